// A customer's path template: the layout of its items below its Dropbox folder, stored with the
// customer. Its placeholders and the checks run before a template or folder root is stored live
// here, beside the customer record, so the CLI and the registry refuse a bad one without importing
// the upload code; activities/paths.ts fills templates in.

/** The layout operators know from the old archiver. */
export const DEFAULT_PATH_TEMPLATE = '{root}/{extension}/{date}/{kind}/{time}_{from}_{to}_{id}.{ext}';
export const PLACEHOLDERS = ['root', 'extension', 'date', 'kind', 'time', 'from', 'to', 'id', 'ext'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];

/** Dropbox refuses path components longer than this. */
const MAX_COMPONENT_LENGTH = 255;
/**
 * Characters the upload code would rewrite to "_" or drop (reserved by Dropbox, control and
 * format characters), so a folder or template that holds them would not be what the operator typed.
 */
// eslint-disable-next-line no-control-regex
const REWRITTEN = /[\u0000-\u001f\u007f\\:*?"<>|\p{Cf}]/u;

/** Refuses a component that the upload code would not store as written. */
function checkComponent(what: string, component: string, shown = component): void {
  if (component === '') throw new Error(`${what} has an empty component (a leading, trailing or double "/")`);
  if (component === '.' || component === '..')
    throw new Error(`${what} may not contain a "${component}" component; give the folder itself`);
  if (REWRITTEN.test(component))
    throw new Error(`${what} component "${shown}" holds a character Dropbox reserves (\\ : * ? " < > | or control)`);
  if (/^ | $|\.$/.test(component))
    throw new Error(`${what} component "${shown}" may not start or end with a space, or end with "."`);
}

/**
 * Checks a customer's Dropbox folder: absolute, at least one folder deep, no empty, "." or ".."
 * components, and nothing the upload code would rewrite.
 * @throws Error naming the problem
 */
export function validateFolderRoot(root: string): void {
  if (!root.startsWith('/')) throw new Error(`folder root must be absolute, like /Archiver; got "${root}"`);
  const components = root.slice(1).split('/');
  for (const component of components) checkComponent('folder root', component);
  const tooLong = components.find((c) => c.length > MAX_COMPONENT_LENGTH);
  if (tooLong !== undefined) throw new Error(`folder root component is longer than ${MAX_COMPONENT_LENGTH} characters`);
}

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
  // Placeholders are filled and made safe at upload time; the literal text must be safe as written.
  for (const component of components) checkComponent('path template', component.replace(/\{\w+\}/g, 'x'), component);
}
