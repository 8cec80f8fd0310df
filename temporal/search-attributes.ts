import type { Client } from '@temporalio/client';
import proto from '@temporalio/proto';
import { searchAttributes } from '../workflows/names.js';

/**
 * Registers Archiver's search attributes with the namespace, so the Web UI can filter by them.
 * Idempotent: attributes that already exist are left alone.
 */
export async function ensureSearchAttributes(client: Client): Promise<void> {
  const wanted = Object.fromEntries(Object.values(searchAttributes).map((k) => [k.name, k.type]));
  const existing = await client.connection.operatorService.listSearchAttributes({
    namespace: client.options.namespace,
  });
  const known = new Set(Object.keys(existing.customAttributes ?? {}));
  const missing = Object.entries(wanted).filter(([name]) => !known.has(name));
  if (missing.length === 0) return;
  const { IndexedValueType } = proto.temporal.api.enums.v1;
  const indexedType = (type: string) =>
    type === 'INT' ? IndexedValueType.INDEXED_VALUE_TYPE_INT : IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD;
  await client.connection.operatorService.addSearchAttributes({
    namespace: client.options.namespace,
    searchAttributes: Object.fromEntries(missing.map(([name, type]) => [name, indexedType(String(type))])),
  });
}
