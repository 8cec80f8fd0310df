/**
 * Namespaces of test files whose workers run as separate processes on the real `archiver` task
 * queue. Sharing one namespace, they would take each other's tasks against the wrong database.
 */
export const PROCESS_TEST_NAMESPACES = ['durability', 'cli', 'sessions', 'metrics', 'startup', 'connect'] as const;
export type ProcessTestNamespace = (typeof PROCESS_TEST_NAMESPACES)[number];
