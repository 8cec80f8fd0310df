/**
 * The Dropbox emulator's public API: `startDropboxEmulator` and the types of its options, its
 * handle and what the handle reports. Everything else in src/ is internal.
 */
export { startDropboxEmulator } from './server.js';
export type * from './types.js';
