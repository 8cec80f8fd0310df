// Loaded by path (temporal/payload-codec.ts, FAILURE_CONVERTER_PATH) in workers, clients and the
// workflow bundle: failure messages and stack traces go into an encoded payload, which the
// payload codec seals, instead of travelling in plain text.
const { DefaultFailureConverter } = require('@temporalio/common');

exports.failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
