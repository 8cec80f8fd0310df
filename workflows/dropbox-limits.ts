// Limits of the Dropbox API that workflow code plans by. It imports nothing, so activities use
// it from here too (workflows may import only types from activities/).

/** Dropbox accepts at most this many entries in one files/upload_session/finish_batch_v2. */
export const MAX_BATCH_ENTRIES = 1000;
