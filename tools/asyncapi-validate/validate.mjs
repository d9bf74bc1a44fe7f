// Validates an AsyncAPI 3.0 document (default: docs/asyncapi.json) against the official AsyncAPI 3.0.0 JSON
// Schema from @asyncapi/specs, then every message example against its message's payload and headers schemas.
// Prints what it checked; exits 1 with every error (path and message) when something does not validate.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';

const require = createRequire(import.meta.url);
const specs = require('@asyncapi/specs');

const path = process.argv[2] ?? new URL('../../docs/asyncapi.json', import.meta.url).pathname;
let doc;
try {
  doc = JSON.parse(readFileSync(path, 'utf8'));
} catch (e) {
  console.error(`cannot read ${path}: ${e.message}`);
  process.exit(2);
}

function newAjv(options = {}) {
  const ajv = new Ajv({ allErrors: true, strict: false, ...options });
  addFormats(ajv);
  // Number formats schemars writes (annotations; the type already says integer or number).
  for (const f of ['double', 'float', 'int64', 'int32', 'uint64', 'uint32']) ajv.addFormat(f, true);
  return ajv;
}

const show = (errors) => errors.map((e) => `  ${e.instancePath || '/'}: ${e.message} ${JSON.stringify(e.params)}`).join('\n');

const spec = specs.schemas['3.0.0'];
// The AsyncAPI schema carries its own copy of the draft-07 meta-schema: ajv's built-in one would clash with it.
const validateSpec = newAjv({ meta: false, validateSchema: false }).compile(spec);
if (!validateSpec(doc)) {
  console.error(`${path} does not validate against the AsyncAPI 3.0.0 schema:\n${show(validateSpec.errors)}`);
  process.exit(1);
}

const ajv = newAjv();
const schemas = doc.components?.schemas ?? {};
const messages = doc.components?.messages ?? {};
let failures = 0;
let examples = 0;
for (const [id, message] of Object.entries(messages)) {
  const wrap = (schema) => ajv.compile({ components: { schemas }, allOf: [schema] });
  const payload = wrap(message.payload);
  const headers = wrap(message.headers);
  for (const example of message.examples ?? []) {
    examples += 1;
    if (!payload(example.payload)) {
      failures += 1;
      console.error(`message ${id}: example payload does not validate:\n${show(payload.errors)}`);
    }
    if (!headers(example.headers)) {
      failures += 1;
      console.error(`message ${id}: example headers do not validate:\n${show(headers.errors)}`);
    }
  }
}
const count = (o) => Object.keys(o ?? {}).length;
if (failures > 0) {
  console.error(`${failures} example(s) do not validate`);
  process.exit(1);
}
console.log(
  `ok: ${path} is valid AsyncAPI ${doc.asyncapi} (${count(doc.channels)} channels, ${count(messages)} messages, ` +
    `${count(doc.operations)} operations, ${count(schemas)} schemas); ${examples} examples validate`,
);
