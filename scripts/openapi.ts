import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { openApiDocument } from '../services/api/openapi/document.js';

/** The committed copy of the api's OpenAPI document (services/api/openapi.json). */
export const OPENAPI_FILE = fileURLToPath(new URL('../services/api/openapi.json', import.meta.url));

export const renderOpenApi = (): string => `${JSON.stringify(openApiDocument(), null, 2)}\n`;

// `npm run openapi` writes the file; `npm run openapi -- --check` fails when it is stale.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = renderOpenApi();
  if (process.argv.includes('--check')) {
    if (readFileSync(OPENAPI_FILE, 'utf8') !== text) {
      console.error(`${OPENAPI_FILE} is stale: run npm run openapi`);
      process.exit(1);
    }
  } else {
    writeFileSync(OPENAPI_FILE, text);
    console.log(`wrote ${OPENAPI_FILE}`);
  }
}
