/**
 * The API types the dashboard uses. One line decides where they come from:
 * - './types.generated': generated from openapi/openapi.json by `npm run gen:types` (part of
 *   `npm run build`), so the dashboard fails to build when the API document changes under it;
 * - './types.contract': hand-written from docs/CONTRACT.md, for building without the document.
 */
export type * from './types.generated';
