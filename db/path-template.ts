// A customer's path template: the layout of its items below its Dropbox folder, stored with the
// customer. Its placeholders and the check run before one is stored live here, beside the customer
// record, so the CLI and the registry refuse a bad template without importing the upload code;
// activities/paths.ts fills templates in.

/** The layout operators know from the old archiver. */
export const DEFAULT_PATH_TEMPLATE = '{root}/{extension}/{date}/{kind}/{time}_{from}_{to}_{id}.{ext}';
export const PLACEHOLDERS = ['root', 'extension', 'date', 'kind', 'time', 'from', 'to', 'id', 'ext'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];

/**
 * Checks a customer's path template, so a bad one is refused when it is set, not at upload time.
 * @throws Error naming the problem
 */
export function validatePathTemplate(template: string): void {
  const components = template.split('/');
  for (const match of template.matchAll(/\{([^}]*)\}/g)) {
    if (!PLACEHOLDERS.includes(match[1] as Placeholder))
      throw new Error(
        `path template has unknown placeholder {${match[1]}}; known: ${PLACEHOLDERS.map((p) => `{${p}}`).join(' ')}`,
      );
  }
  const last = components.at(-1) ?? '';
  // The id keeps every item's path unique, so two items can never land on one file.
  if (!last.includes('{id}'))
    throw new Error(
      'path template must contain {id} in its file name (the last component), so every item gets its own file',
    );
  if (components.some((c, i) => c.includes('{root}') && (c !== '{root}' || i !== 0)))
    throw new Error('{root} may only be the first component of a path template');
  if (components.some((c) => c.trim() === ''))
    throw new Error('path template has an empty component (a leading, trailing or double "/")');
}
