/** The workflow bundle's entry: every workflow the Archiver worker hosts. */
export { archiveCustomer } from './archive-customer.js';
export { verifyArchive } from './verify-archive.js';
export { writeDayManifests } from './write-manifests.js';
