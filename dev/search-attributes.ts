import { searchAttributes } from '../workflows/names.js';

/** Archiver's search attributes in `temporal server start-dev --search-attribute` form. */
export const DEV_SERVER_SEARCH_ATTRIBUTES = Object.fromEntries(
  Object.values(searchAttributes).map((key) => [key.name, key.type === 'INT' ? 'Int' : 'Keyword'] as const),
) as Record<string, 'Keyword' | 'Int'>;
