// The codec server as the Web UI and the temporal CLI call it: a real HTTP server on loopback,
// the real codec, and fetch.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultPayloadConverter } from '@temporalio/common';
import { parseKeyring } from '../../secrets/keyring.js';
import { startCodecServer, type CodecServer } from '../../temporal/codec-server.js';
import { EncryptionCodec } from '../../temporal/payload-codec.js';
import { testKeyEntry, testKeyring } from '../support/secret-keys.js';

const TOKEN = 'codec-test-token-0123456789';
const UI = 'http://127.0.0.1:8233';
let server: CodecServer;

beforeAll(async () => {
  server = await startCodecServer({ keyring: testKeyring(), token: TOKEN, origins: [UI] });
});
afterAll(() => server?.close());

type JsonPayload = { metadata: Record<string, string>; data: string };
const json = (p: { metadata?: Record<string, Uint8Array> | null; data?: Uint8Array | null }): JsonPayload => ({
  metadata: Object.fromEntries(
    Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
  ),
  data: Buffer.from(p.data ?? []).toString('base64'),
});
const plain = json(defaultPayloadConverter.toPayload({ customerName: 'Zebulon Dental Care' }));

function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${server.url}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Namespace': 'default', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(5_000),
  });
}
const bearer = { Authorization: `Bearer ${TOKEN}` };

describe('the codec server', () => {
  it('encodes and decodes payloads for the bearer of its token, in the header or the path', async () => {
    const encoded = (await (await post('/encode', { payloads: [plain] }, bearer)).json()) as {
      payloads: JsonPayload[];
    };
    const sealed = encoded.payloads[0]!;
    expect(Buffer.from(sealed.metadata.encoding!, 'base64').toString()).toBe('binary/encrypted');
    expect(Buffer.from(sealed.data, 'base64').toString('latin1')).not.toContain('Zebulon');
    const viaPath = await post(`/${TOKEN}/decode`, { payloads: [sealed] });
    expect(viaPath.status).toBe(200);
    expect(((await viaPath.json()) as { payloads: JsonPayload[] }).payloads).toEqual([plain]);
    // What the workers seal, it opens: the same codec on both sides.
    const [byWorker] = await new EncryptionCodec(testKeyring()).encode([defaultPayloadConverter.toPayload('hello')]);
    const opened = (await (await post('/decode', { payloads: [json(byWorker!)] }, bearer)).json()) as {
      payloads: JsonPayload[];
    };
    expect(Buffer.from(opened.payloads[0]!.data, 'base64').toString()).toBe('"hello"');
  });

  it('refuses a request without the token, or with a wrong one', async () => {
    expect((await post('/decode', { payloads: [plain] })).status).toBe(401);
    expect(
      (await post('/decode', { payloads: [plain] }, { Authorization: 'Bearer wrong-token-0123456789' })).status,
    ).toBe(401);
    expect((await post('/wrong-token-0123456789/decode', { payloads: [plain] })).status).toBe(401);
  });

  it('lets only the Web UI origin call it from a browser', async () => {
    const preflight = (origin: string) =>
      fetch(`${server.url}/${TOKEN}/decode`, {
        method: 'OPTIONS',
        headers: {
          Origin: origin,
          'Access-Control-Request-Method': 'POST',
          'Access-Control-Request-Headers': 'content-type,x-namespace',
        },
        signal: AbortSignal.timeout(5_000),
      });
    const allowed = await preflight(UI);
    expect(allowed.status).toBe(204);
    expect(allowed.headers.get('access-control-allow-origin')).toBe(UI);
    expect(allowed.headers.get('access-control-allow-headers')).toMatch(/X-Namespace/i);
    const other = await preflight('http://evil.example');
    expect(other.status).toBe(403);
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    expect((await post('/decode', { payloads: [plain] }, { ...bearer, Origin: 'http://evil.example' })).status).toBe(
      403,
    );
  });

  it('names what is wrong with a bad request, never a key', async () => {
    const notJson = await post('/decode', 'not json', bearer);
    expect(notJson.status).toBe(400);
    expect(await notJson.text()).toMatch(/not JSON/);
    expect((await post('/decode', { nothing: [] }, bearer)).status).toBe(400);
    expect((await post('/recode', { payloads: [] }, bearer)).status).toBe(404);
    const [foreign] = await new EncryptionCodec(parseKeyring(testKeyEntry('other'), 'x')).encode([
      defaultPayloadConverter.toPayload('x'),
    ]);
    const unknown = await post('/decode', { payloads: [json(foreign!)] }, bearer);
    expect(unknown.status).toBe(422);
    expect(await unknown.text()).toMatch(/key id other/);
  });
});
