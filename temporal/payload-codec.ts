// Temporal sees Archiver's payloads only encrypted: workflow inputs and results, signals,
// updates, queries, memos, heartbeat details and (with the failure converter below) failure
// messages and stack traces. Each payload is serialized whole and sealed with AES-256-GCM under
// the keyring's current key; the key id rides in the payload's metadata so old histories open
// after a rotation. Search attributes never pass through a codec, so they must carry no personal data.

import { fileURLToPath } from 'node:url';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';
import { openBytes, sealBytes, UnknownSecretKey } from '../secrets/aead.js';
import { derivedKey, type Keyring, type SecretKey } from '../secrets/keyring.js';

/** The metadata `encoding` of a sealed payload. */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
/** The metadata key naming the key that sealed a payload. */
export const KEY_ID_METADATA = 'encryption-key-id';
/** Binds every sealed payload to this use, so a sealed token could never pass for a payload. */
const AAD = Buffer.from('archiver temporal payload v1');

/**
 * The failure converter every client and worker uses: it moves failure messages and stack traces
 * into a payload, which the codec then seals. A CommonJS file, because Temporal loads it by path
 * both in the worker and inside the workflow bundle.
 */
export const FAILURE_CONVERTER_PATH = fileURLToPath(new URL('./failure-converter.cjs', import.meta.url));

const ProtoPayload = proto.temporal.api.common.v1.Payload;
const utf8 = new TextEncoder();
const text = new TextDecoder();

/** Seals and opens payloads with a keyring's payload keys. */
export class EncryptionCodec implements PayloadCodec {
  private readonly keys = new Map<string, Buffer>();

  constructor(private readonly keyring: Keyring) {}

  encode(payloads: Payload[]): Promise<Payload[]> {
    const { current } = this.keyring;
    const key = this.keyFor(current);
    return Promise.resolve(
      payloads.map((payload) => ({
        metadata: { encoding: utf8.encode(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: utf8.encode(current.id) },
        data: sealBytes(key, Buffer.from(ProtoPayload.encode(payload).finish()), AAD),
      })),
    );
  }

  /**
   * Opens sealed payloads; any other payload passes through unchanged (histories written before
   * the codec, and payloads Temporal itself adds).
   * @throws UnknownSecretKey for a key id the keyring lacks, SecretUnreadable for a wrong key or changed bytes
   */
  decode(payloads: Payload[]): Promise<Payload[]> {
    return Promise.resolve(
      payloads.map((payload) => {
        const encoding = payload.metadata?.encoding;
        if (!encoding || text.decode(encoding) !== ENCRYPTED_ENCODING) return payload;
        const idBytes = payload.metadata?.[KEY_ID_METADATA];
        const id = idBytes ? text.decode(idBytes) : '(none)';
        const key = this.keyring.byId(id);
        if (!key) throw new UnknownSecretKey(id);
        const opened = openBytes(this.keyFor(key), payload.data ?? new Uint8Array(), AAD);
        return ProtoPayload.decode(opened);
      }),
    );
  }

  private keyFor(key: SecretKey): Buffer {
    let derived = this.keys.get(key.id);
    if (!derived) {
      derived = derivedKey(key, 'payloads');
      this.keys.set(key.id, derived);
    }
    return derived;
  }
}

/** The data converter for every Archiver client and worker: sealed payloads, failures' text inside them. */
export function archiverDataConverter(keyring: Keyring): DataConverter {
  return { payloadCodecs: [new EncryptionCodec(keyring)], failureConverterPath: FAILURE_CONVERTER_PATH };
}
