/** The media server as its own process, for the chaos suite: prints its URL and stops on SIGTERM. */
import { startMediaServer } from '../../dev/media-server.js';

const media = await startMediaServer();
console.log(`media server listening on ${media.url}`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void media.stop().then(() => process.exit(0));
  });
}
