// OpenAPI 3.1 description of the REST API, served at /api/openapi.json.
// Every status a route can answer is declared on it (test/http-api.test.ts
// drives each route into each of them and checks this document lists it).
// The error answers share one schema and the response components below.

const docParam = {
  name: 'doc', in: 'path', required: true,
  description: 'Document name, percent-encoded as one path segment (a/b → a%2Fb)',
  schema: { type: 'string', pattern: '^[A-Za-z0-9._~:-][A-Za-z0-9._~:/-]{0,254}$' },
};

const ref = (name: string) => ({ $ref: `#/components/responses/${name}` });

/** The error answers every route can give: 401/403 only when the server has authentication configured. */
const commonErrors = { 401: ref('Unauthorized'), 403: ref('Forbidden'), 405: ref('MethodNotAllowed') };
/** Routes that read or write the database also answer 503 when it cannot be used. */
const storeErrors = { ...commonErrors, 503: ref('StoreUnavailable') };
/** Routes with a {doc} in the path answer 400 for an invalid name (or bad query parameters). */
const documentErrors = { 400: ref('BadRequest'), ...storeErrors };
/**
 * Routes that change something (every POST) also answer 403 CORS_ORIGIN_REFUSED
 * to a page on an origin that is neither this server's nor in --cors-origins.
 */
const writeErrors = { ...documentErrors, 403: ref('ForbiddenWrite') };

const existsHeader = {
  'X-Palimpsest-Exists': {
    description: '`false` when no document of that name was ever written (the answer is then the empty document at seq 0)',
    schema: { type: 'string', enum: ['true', 'false'] },
  },
};

const json = (schema: unknown) => ({ 'application/json': { schema } });

/** A seq, or an ISO 8601 time for the last seq received at or before it. */
const atParam = (description: string) => ({
  name: 'at', in: 'query', description: `${description}; a seq, or an ISO 8601 time (the last seq received at or before it)`,
  schema: { oneOf: [{ type: 'integer', minimum: 0 }, { type: 'string', format: 'date-time' }] },
});

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'Palimpsest document API',
    version: '1',
    description: 'History, state, content and restore of the documents of a Palimpsest server. ' +
      'When the server has authentication configured, send the same JWT as the WebSocket clients as `Authorization: Bearer <token>`. ' +
      'A valid document name that was never written reads as the empty document at seq 0 on every route; ' +
      'the answers say so with `exists: false` (JSON objects) or `X-Palimpsest-Exists: false` (history, state and content). ' +
      'While the server starts (its port is bound before its database is open), every route answers 503 `STARTING` with `Retry-After: 1`.',
  },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
    schemas: {
      Error: {
        type: 'object',
        required: ['error'],
        properties: {
          error: {
            type: 'object',
            required: ['code', 'message'],
            properties: {
              code: {
                type: 'string',
                description: 'stable code: INVALID_DOCUMENT_NAME, BAD_REQUEST, MALFORMED_UPDATE, MALFORMED_CONTENT (400); ' +
                  'TOKEN_MISSING, TOKEN_INVALID, TOKEN_EXPIRED, TOKEN_CLAIMS_INVALID (401); FORBIDDEN, CORS_ORIGIN_REFUSED (403); ' +
                  'UNKNOWN_SEQ, UNKNOWN_DEAD_LETTER, NOT_FOUND (404); METHOD_NOT_ALLOWED (405); FIELD_TYPE_MISMATCH (409); HISTORY_PRUNED (410); ' +
                  'BODY_TOO_LARGE, DOCUMENT_TOO_LARGE, CONVERSION_TIMEOUT (413); UNSUPPORTED_MEDIA_TYPE (415); SCHEMA_MISMATCH (422); ' +
                  'WEBHOOK_DELIVERY_FAILED (502); STORE_UNAVAILABLE, STORE_WRITE_FAILED, STORE_CLOSED, CONVERSION_TIMEOUT, CONVERSION_QUEUE_FULL (503)',
              },
              message: { type: 'string', description: 'what went wrong and what to do' },
            },
          },
        },
      },
      LogEntry: {
        type: 'object',
        required: ['seq', 'receivedAt', 'instanceId', 'user', 'size', 'update'],
        properties: {
          seq: { type: 'integer', minimum: 1 },
          receivedAt: { type: 'string', format: 'date-time' },
          instanceId: { type: 'string' },
          user: { type: ['string', 'null'] },
          displayName: { type: ['string', 'null'], description: 'the name the writing connection announced (token `name` claim, else its awareness `user.name`)' },
          size: { type: 'integer', description: 'bytes of the logged update' },
          update: { type: 'string', contentEncoding: 'base64', description: 'the logged Yjs update (v1)' },
        },
      },
      FeedEntry: {
        description: 'A log entry of the all-documents feed: the history entry plus its document and its cursor',
        allOf: [
          { $ref: '#/components/schemas/LogEntry' },
          {
            type: 'object', required: ['doc', 'cursor'],
            properties: { doc: { type: 'string' }, cursor: { type: 'string', description: 'opaque; pass as `after` (or Last-Event-ID) to read on after this entry' } },
          },
        ],
      },
      DeadLetter: {
        type: 'object',
        required: ['id', 'url', 'doc', 'type', 'fromSeq', 'toSeq', 'body', 'attempts', 'firstAttemptAt', 'deadAt', 'lastError'],
        properties: {
          id: { type: 'string', description: 'the webhook-id it was (and will be) sent with' },
          url: { type: 'string' }, doc: { type: 'string' }, type: { enum: ['document.changed', 'document.restored'] },
          fromSeq: { type: 'integer' }, toSeq: { type: 'integer' }, body: { type: 'string', description: 'the exact JSON body sent' },
          attempts: { type: 'integer' }, firstAttemptAt: { type: 'string', format: 'date-time' }, deadAt: { type: 'string', format: 'date-time' },
          lastError: { type: ['string', 'null'], description: 'e.g. "HTTP 500", "ECONNREFUSED", "no answer within 15000 ms"' },
        },
      },
      DocumentInfo: {
        type: 'object',
        required: ['doc', 'exists', 'seq', 'updatedAt', 'firstRetainedSeq', 'snapshots'],
        properties: {
          doc: { type: 'string' },
          exists: { type: 'boolean', description: 'false when the document was never written (seq is then 0)' },
          seq: { type: 'integer', minimum: 0, description: 'seq of the latest log entry' },
          updatedAt: { type: ['string', 'null'], format: 'date-time' },
          firstRetainedSeq: { type: ['integer', 'null'] },
          snapshots: {
            type: 'array',
            items: { type: 'object', required: ['seq', 'createdAt', 'size'], properties: { seq: { type: 'integer' }, createdAt: { type: 'string', format: 'date-time' }, size: { type: 'integer' } } },
          },
        },
      },
      State: {
        type: 'object',
        required: ['doc', 'seq', 'update', 'exists'],
        properties: {
          doc: { type: 'string' },
          seq: { type: 'integer', minimum: 0 },
          update: { type: 'string', contentEncoding: 'base64', description: 'the state as one Yjs update (v1)' },
          exists: { type: 'boolean' },
        },
      },
      VersionAuthor: {
        type: 'object', required: ['user', 'displayName'],
        properties: {
          user: { type: ['string', 'null'], description: 'the token\'s sub; null without authentication' },
          displayName: { type: ['string', 'null'], description: 'the token\'s name claim, else the displayName the request sent' },
        },
      },
      Versions: {
        type: 'object',
        required: ['doc', 'exists', 'seq', 'pauseSeconds', 'units', 'versions', 'nextBefore'],
        properties: {
          doc: { type: 'string' },
          exists: { type: 'boolean' },
          seq: { type: 'integer', description: 'the latest seq' },
          pauseSeconds: { type: 'integer' },
          units: { const: 'characters', description: 'added: UTF-16 code units of text inserted plus one per element or embed; removed: Yjs items deleted (the same unit)' },
          nextBefore: { type: ['integer', 'null'], description: 'pass as before for the next (older) page; null on the last page' },
          versions: {
            type: 'array',
            items: {
              type: 'object',
              required: ['fromSeq', 'toSeq', 'startedAt', 'endedAt', 'authors', 'entries', 'added', 'removed', 'name', 'namedBy', 'restoredFrom'],
              properties: {
                fromSeq: { type: 'integer' }, toSeq: { type: 'integer' },
                startedAt: { type: 'string', format: 'date-time' }, endedAt: { type: 'string', format: 'date-time' },
                authors: { type: 'array', items: { type: 'object', properties: { user: { type: ['string', 'null'] }, displayName: { type: ['string', 'null'] } } } },
                entries: { type: 'integer' }, added: { type: 'integer' }, removed: { type: 'integer' },
                name: { type: ['string', 'null'] },
                restoredFrom: { type: ['integer', 'null'], description: 'set when this version is a restore: the seq it went back to' },
                namedBy: { oneOf: [{ $ref: '#/components/schemas/VersionAuthor' }, { type: 'null' }], description: 'who named it (for a restore: who restored)' },
              },
            },
          },
        },
      },
      Authorship: {
        type: 'object',
        required: ['doc', 'exists', 'seq', 'since', 'blocks', 'authors'],
        properties: {
          doc: { type: 'string' }, exists: { type: 'boolean' }, seq: { type: 'integer' }, since: { type: ['integer', 'null'] },
          blocks: {
            type: 'array',
            items: {
              type: 'object', required: ['type', 'runs'],
              properties: {
                type: { type: 'string', description: 'element name (paragraph, heading, …) or the name of a root text' },
                change: { enum: ['inserted', 'removed'] },
                runs: {
                  type: 'array',
                  items: {
                    type: 'object', required: ['text', 'author', 'user', 'seq'],
                    properties: {
                      text: { type: 'string' },
                      author: { type: ['string', 'null'], description: 'display name, else user id; null for the server or text older than the retained log' },
                      user: { type: ['string', 'null'] },
                      seq: { type: 'integer', description: 'the entry that wrote it (0: older than the retained log)' },
                      change: { enum: ['inserted', 'removed'], description: 'with since only' },
                    },
                  },
                },
              },
            },
          },
          authors: { type: 'array', items: { type: 'object', properties: { author: { type: ['string', 'null'] }, user: { type: ['string', 'null'] }, characters: { type: 'integer' } } } },
        },
      },
      CompactionResult: {
        oneOf: [
          {
            type: 'object', required: ['doc', 'seq', 'size', 'pruned'], description: 'a snapshot was written',
            properties: { doc: { type: 'string' }, seq: { type: 'integer' }, size: { type: 'integer' }, pruned: { type: 'integer' } },
          },
          {
            type: 'object', required: ['doc', 'seq', 'compacted'], description: 'nothing to do: already compact, or (exists: false) never written',
            properties: { doc: { type: 'string' }, seq: { type: 'integer' }, compacted: { const: false }, exists: { const: false } },
          },
        ],
      },
    },
    headers: {
      Allow: { description: 'The methods this path answers', schema: { type: 'string' } },
      'WWW-Authenticate': { description: '`Bearer`', schema: { type: 'string' } },
      'Retry-After': { description: 'Seconds to wait before trying again', schema: { type: 'string' } },
    },
    responses: {
      BadRequest: { description: 'Invalid document name (INVALID_DOCUMENT_NAME), query parameter or body (BAD_REQUEST)', content: json({ $ref: '#/components/schemas/Error' }) },
      Unauthorized: {
        description: 'Authentication is configured and the request has no valid bearer token: none was sent (TOKEN_MISSING), it is not a JWT, ' +
          'its signature, key or algorithm is not accepted, or it is over 16 KiB (TOKEN_INVALID), it has expired (TOKEN_EXPIRED), ' +
          'or it lacks a sub claim or its docs claim does not parse (TOKEN_CLAIMS_INVALID)',
        headers: { 'WWW-Authenticate': { $ref: '#/components/headers/WWW-Authenticate' } },
        content: json({ $ref: '#/components/schemas/Error' }),
      },
      Forbidden: { description: 'The token does not grant this access to the document (FORBIDDEN)', content: json({ $ref: '#/components/schemas/Error' }) },
      ForbiddenWrite: {
        description: 'The token does not grant this access to the document (FORBIDDEN), or the request comes from a page on another origin ' +
          '(its Origin header) that is not listed in --cors-origins (CORS_ORIGIN_REFUSED); nothing is changed',
        content: json({ $ref: '#/components/schemas/Error' }),
      },
      UnknownSeq: { description: 'The document has no such seq (UNKNOWN_SEQ)', content: json({ $ref: '#/components/schemas/Error' }) },
      MethodNotAllowed: {
        description: 'The path does not answer this method (METHOD_NOT_ALLOWED); Allow lists the methods it does answer',
        headers: { Allow: { $ref: '#/components/headers/Allow' } },
        content: json({ $ref: '#/components/schemas/Error' }),
      },
      HistoryPruned: { description: 'The retention policy dropped the log entries needed (HISTORY_PRUNED)', content: json({ $ref: '#/components/schemas/Error' }) },
      BodyTooLarge: { description: 'The request body is over 64 KiB (BODY_TOO_LARGE)', content: json({ $ref: '#/components/schemas/Error' }) },
      WriteTooLarge: {
        description: 'The body is over --max-message-bytes (BODY_TOO_LARGE), the change would grow the document past --max-document-bytes ' +
          '(DOCUMENT_TOO_LARGE, the limit WebSocket clients meet as close code 4413), or converting the body took longer than 10 s, ' +
          'waiting for the converter included (CONVERSION_TIMEOUT: send it in smaller pieces with mode=append); nothing is logged',
        content: json({ $ref: '#/components/schemas/Error' }),
      },
      MalformedUpdate: {
        description: 'Invalid document name or query parameter (INVALID_DOCUMENT_NAME, BAD_REQUEST), or the body is not an applicable Yjs update (MALFORMED_UPDATE); nothing is logged',
        content: json({ $ref: '#/components/schemas/Error' }),
      },
      MalformedContent: {
        description: 'Invalid document name or query parameter (INVALID_DOCUMENT_NAME, BAD_REQUEST: unknown format or mode), ' +
          'or a body that does not parse (MALFORMED_CONTENT: JSON syntax, bytes that are not UTF-8); nothing is logged',
        content: json({ $ref: '#/components/schemas/Error' }),
      },
      SchemaMismatch: {
        description: 'The body parses but is not a document of the editor\'s schema (SCHEMA_MISMATCH): an unknown node or mark, a node where its parent cannot hold it, a top node other than doc; nothing is logged',
        content: json({ $ref: '#/components/schemas/Error' }),
      },
      FieldTypeMismatch: {
        description: 'The field holds another kind of Yjs type (FIELD_TYPE_MISMATCH): a Y.Text reads only as format=text and takes no content; a Y.Map or Y.Array neither',
        content: json({ $ref: '#/components/schemas/Error' }),
      },
      ContentUnavailable: {
        description: 'The database cannot be used right now (STORE_* codes), converting the document took longer than 10 s, waiting for the converter ' +
          'included (CONVERSION_TIMEOUT: read /state instead), or 16 conversions already wait for the converter (CONVERSION_QUEUE_FULL: retry after Retry-After seconds)',
        headers: { 'Retry-After': { $ref: '#/components/headers/Retry-After' } },
        content: json({ $ref: '#/components/schemas/Error' }),
      },
      ConversionQueueFull: {
        description: 'The database cannot be used right now (STORE_* codes), or 16 conversions already wait for the converter ' +
          '(CONVERSION_QUEUE_FULL: retry after Retry-After seconds); nothing is logged',
        headers: { 'Retry-After': { $ref: '#/components/headers/Retry-After' } },
        content: json({ $ref: '#/components/schemas/Error' }),
      },
      UnsupportedMediaType: { description: 'The Content-Type is not one this route takes, or not UTF-8 (UNSUPPORTED_MEDIA_TYPE); nothing is logged', content: json({ $ref: '#/components/schemas/Error' }) },
      StoreUnavailable: { description: 'The database cannot be used right now (STORE_* codes), or the server is still starting (STARTING, with Retry-After); retry', content: json({ $ref: '#/components/schemas/Error' }) },
    },
  },
  security: [{ bearer: [] }, {}],
  paths: {
    '/api/openapi.json': {
      get: {
        summary: 'This document', security: [{}],
        responses: { 200: { description: 'OpenAPI 3.1 document', content: json({ type: 'object' }) }, 405: ref('MethodNotAllowed') },
      },
    },
    '/api/documents': {
      get: {
        summary: 'List document names (the documents ever written)',
        responses: {
          200: { description: 'Names', content: json({ type: 'object', required: ['documents'], properties: { documents: { type: 'array', items: { type: 'string' } } } }) },
          ...storeErrors,
        },
      },
    },
    '/api/documents/{doc}': {
      get: {
        summary: 'Document info: last seq, snapshots, retained history',
        parameters: [docParam],
        responses: { 200: { description: 'Info (exists: false and seq 0 for a document never written)', content: json({ $ref: '#/components/schemas/DocumentInfo' }) }, ...documentErrors },
      },
    },
    '/api/documents/{doc}/history': {
      get: {
        summary: 'Log entries, oldest first',
        parameters: [docParam,
          { name: 'after', in: 'query', schema: { type: 'integer', minimum: 0 }, description: 'only entries with a greater seq' },
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 10000, default: 1000 }, description: 'most entries answered; outside 1-10000: 400 BAD_REQUEST' }],
        responses: {
          200: { description: 'Entries ([] for a document never written)', headers: existsHeader, content: json({ type: 'array', items: { $ref: '#/components/schemas/LogEntry' } }) },
          ...documentErrors,
        },
      },
    },
    '/api/documents/{doc}/state': {
      get: {
        summary: 'The state at a seq as one Yjs update (binary, or JSON with Accept: application/json)',
        parameters: [docParam, atParam('default: the latest seq')],
        responses: {
          200: {
            description: 'State',
            headers: { 'X-Palimpsest-Seq': { description: 'the seq of this state', schema: { type: 'string' } }, ...existsHeader },
            content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } }, ...json({ $ref: '#/components/schemas/State' }) },
          },
          ...documentErrors,
          404: ref('UnknownSeq'),
          410: ref('HistoryPruned'),
        },
      },
    },
    '/api/documents/{doc}/restore': {
      post: {
        summary: 'Restore the state at a seq by appending an update that undoes every later change (only what differs; nothing when the content is already that state)',
        parameters: [docParam],
        requestBody: {
          required: true,
          content: json({
            type: 'object',
            description: 'exactly one of seq and at; any other field is 400 BAD_REQUEST naming it',
            additionalProperties: false,
            oneOf: [{ required: ['seq'] }, { required: ['at'] }],
            properties: {
              seq: { type: 'integer', minimum: 0 },
              at: { type: 'string', format: 'date-time', description: 'instead of seq: the last seq received at or before this time' },
              displayName: { type: 'string', description: 'the name the restoring person goes by, used when the request has no token or its token no name claim (a token\'s name always wins); recorded with the entry so the restore shows as theirs' },
            },
          }),
        },
        responses: {
          200: {
            description: 'changed: true when an entry was appended (seq is its seq; it is named "Restored from seq N" in the versions); ' +
              'changed: false when the content already was that of seq N, so nothing was logged (seq is the latest seq)',
            content: json({
              type: 'object', required: ['doc', 'restoredTo', 'seq', 'changed'],
              properties: { doc: { type: 'string' }, restoredTo: { type: 'integer' }, seq: { type: 'integer' }, changed: { type: 'boolean' }, exists: { const: false } },
            }),
          },
          ...writeErrors,
          404: ref('UnknownSeq'),
          410: ref('HistoryPruned'),
          413: ref('BodyTooLarge'),
          415: ref('UnsupportedMediaType'),
        },
      },
    },
    '/api/documents/{doc}/versions': {
      get: {
        summary: 'Versions, newest first: consecutive entries by one author without a pause longer than pauseSeconds (a named entry ends a version; a restore starts one)',
        parameters: [docParam,
          { name: 'pauseSeconds', in: 'query', schema: { type: 'integer', minimum: 0, default: 300 } },
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 500, default: 50 }, description: 'versions per page; outside 1-500: 400 BAD_REQUEST' },
          { name: 'before', in: 'query', schema: { type: 'integer', minimum: 1 }, description: 'only entries with a smaller seq (pass nextBefore for the next page)' },
          { name: 'at', in: 'query', schema: { type: 'string', format: 'date-time' }, description: 'only entries received at or before this time' }],
        responses: { 200: { description: 'A page of versions', content: json({ $ref: '#/components/schemas/Versions' }) }, ...documentErrors },
      },
      post: {
        summary: 'Name the version ending at a seq (needs write access); naming it again replaces the name',
        parameters: [docParam],
        requestBody: {
          required: true,
          content: json({
            type: 'object', required: ['name'],
            description: 'exactly one of seq and at; any other field is 400 BAD_REQUEST naming it',
            additionalProperties: false,
            oneOf: [{ required: ['seq'] }, { required: ['at'] }],
            properties: {
              seq: { type: 'integer', minimum: 1 },
              at: { type: 'string', format: 'date-time', description: 'instead of seq: the last seq received at or before this time' },
              name: { type: 'string', minLength: 1, maxLength: 200 },
              displayName: { type: 'string', description: 'who names it, used when the request has no token or its token no name claim (a token\'s name always wins)' },
            },
          }),
        },
        responses: {
          200: {
            description: 'Named',
            content: json({
              type: 'object', required: ['doc', 'seq', 'name', 'namedBy'],
              properties: { doc: { type: 'string' }, seq: { type: 'integer' }, name: { type: 'string' }, namedBy: { $ref: '#/components/schemas/VersionAuthor' } },
            }),
          },
          ...writeErrors,
          404: ref('UnknownSeq'),
          413: ref('BodyTooLarge'),
          415: ref('UnsupportedMediaType'),
        },
      },
    },
    '/api/documents/{doc}/authors': {
      get: {
        summary: 'Who each Yjs client id that wrote to the retained log is (the author of its first entry), for colouring the live text by author',
        parameters: [docParam],
        responses: {
          200: {
            description: 'The client ids',
            content: json({
              type: 'object', required: ['doc', 'seq', 'clients'],
              properties: {
                doc: { type: 'string' }, seq: { type: 'integer' },
                clients: {
                  type: 'array',
                  items: { type: 'object', required: ['client', 'user', 'displayName'], properties: {
                    client: { type: 'integer' }, user: { type: ['string', 'null'] }, displayName: { type: ['string', 'null'] },
                  } },
                },
              },
            }),
          },
          ...documentErrors,
        },
      },
    },
    '/api/documents/{doc}/authorship': {
      get: {
        summary: 'Who wrote each run of text present at a seq, block by block; with since, also what was inserted and removed after since',
        parameters: [docParam, atParam('default: the latest seq'), { ...atParam('mark runs inserted or removed after this seq'), name: 'since' }],
        responses: {
          200: { description: 'Authorship', content: json({ $ref: '#/components/schemas/Authorship' }) }, ...documentErrors, 404: ref('UnknownSeq'), 410: ref('HistoryPruned'),
        },
      },
    },
    '/api/documents/{doc}/changes': {
      get: {
        summary: 'The document\'s log entries after a seq, then live as they commit: Server-Sent Events, or a JSON array with Accept: application/json',
        description: 'As an event stream (the default; what EventSource asks for), each event is `id: <seq>` and `data: <the entry as in history>`; ' +
          'a reconnecting client\'s `Last-Event-ID` wins over `after`, so it resumes right after the last event it got. ' +
          'With `Accept: application/json` the entries after `after` (up to `limit`), waiting up to `wait` seconds for one when there is none yet.',
        parameters: [docParam,
          { name: 'after', in: 'query', schema: { type: 'integer', minimum: 0, default: 0 }, description: 'the last seq already seen' },
          { name: 'Last-Event-ID', in: 'header', schema: { type: 'string' }, description: 'the last event id (seq) already seen; wins over after' },
          { name: 'wait', in: 'query', schema: { type: 'integer', minimum: 0, maximum: 300, default: 0 }, description: 'JSON: seconds to wait for an entry' },
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 10000, default: 1000 }, description: 'JSON: most entries answered; outside 1-10000: 400 BAD_REQUEST' }],
        responses: {
          200: {
            description: 'The entries (JSON), or the event stream; a stream that cannot go on ends with an `event: error` whose data is `{code, message}`',
            headers: { 'X-Palimpsest-Cursor': { description: 'JSON: the seq to pass as after next time', schema: { type: 'string' } } },
            content: { 'text/event-stream': { schema: { type: 'string' } }, ...json({ type: 'array', items: { $ref: '#/components/schemas/LogEntry' } }) },
          },
          ...documentErrors,
          410: ref('HistoryPruned'),
        },
      },
    },
    '/api/changes': {
      get: {
        summary: 'Every document\'s log entries after a cursor, then live: Server-Sent Events, or a JSON array with Accept: application/json',
        description: 'Needs a token with a "*" rule. Each event is `id: <cursor>` and `data: <FeedEntry>`. ' +
          'Resuming from the last cursor seen never skips an entry, whichever order concurrent writes committed in.',
        parameters: [
          {
            name: 'after', in: 'query', schema: { type: 'string' },
            description: 'the cursor of the last entry already seen (an event id, an entry\'s cursor, X-Palimpsest-Cursor); absent or empty: from the first entry. ' +
              'Its form depends on the backend: a feed position (a whole number from 1) on SQLite, <transaction id>.<seq>.<document name in base64url> on PostgreSQL. ' +
              'Anything else, a number past the safe integers, or a cursor past the end of this database\'s feed (of another or a rebuilt database) is 400 BAD_REQUEST, ' +
              'with a message that says what this server\'s cursors look like',
          },
          { name: 'Last-Event-ID', in: 'header', schema: { type: 'string' }, description: 'the last event id (cursor) already seen; wins over after; checked as after is' },
          { name: 'wait', in: 'query', schema: { type: 'integer', minimum: 0, maximum: 300, default: 0 }, description: 'JSON: seconds to wait for an entry' },
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 10000, default: 1000 }, description: 'JSON: most entries answered; outside 1-10000: 400 BAD_REQUEST' }],
        responses: {
          200: {
            description: 'The entries (JSON), or the event stream',
            headers: { 'X-Palimpsest-Cursor': { description: 'JSON: the cursor to pass as after next time (also when no entry came; empty while the feed has no entry)', schema: { type: 'string' } } },
            content: { 'text/event-stream': { schema: { type: 'string' } }, ...json({ type: 'array', items: { $ref: '#/components/schemas/FeedEntry' } }) },
          },
          400: ref('BadRequest'),
          ...storeErrors,
        },
      },
    },
    '/api/webhooks/dead-letters': {
      get: {
        summary: 'Webhook events given up on after the retry limit (only with --webhook-url; a token with a "*" rule)',
        responses: {
          200: { description: 'Dead letters, oldest first', content: json({ type: 'object', required: ['deadLetters'], properties: { deadLetters: { type: 'array', items: { $ref: '#/components/schemas/DeadLetter' } } } }) },
          ...storeErrors,
        },
      },
    },
    '/api/webhooks/dead-letters/{id}/redeliver': {
      post: {
        summary: 'Send a dead letter once more, with the same webhook-id and body; confirmed ones leave the list (a token with a "*" write rule)',
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        responses: {
          200: { description: 'The endpoint confirmed it', content: json({ type: 'object', required: ['id', 'delivered'], properties: { id: { type: 'string' }, delivered: { const: true } } }) },
          404: { description: 'No such dead letter (UNKNOWN_DEAD_LETTER)', content: json({ $ref: '#/components/schemas/Error' }) },
          502: { description: 'The endpoint did not confirm it (WEBHOOK_DELIVERY_FAILED); it stays a dead letter', content: json({ $ref: '#/components/schemas/Error' }) },
          ...storeErrors,
          403: ref('ForbiddenWrite'),
        },
      },
    },
    '/api/documents/{doc}/updates': {
      post: {
        summary: 'Apply a Yjs update (v1) to the document: logged with the token\'s user, applied to the live document; answers once committed',
        parameters: [docParam],
        requestBody: { required: true, content: { 'application/octet-stream': { schema: { type: 'string', contentMediaType: 'application/octet-stream' } } } },
        responses: {
          200: {
            description: 'seq is the entry that holds the update (the latest seq when the log already held all of it)',
            content: json({ type: 'object', required: ['doc', 'seq'], properties: { doc: { type: 'string' }, seq: { type: 'integer' } } }),
          },
          ...writeErrors,
          400: ref('MalformedUpdate'),
          413: ref('WriteTooLarge'),
          415: ref('UnsupportedMediaType'),
        },
      },
    },
    '/api/documents/{doc}/content': {
      get: {
        summary: 'The document\'s content at a seq: the editor field as ProseMirror JSON, HTML, Markdown or plain text (a Y.Text field: text only)',
        description: 'A document never written answers 200 with its empty content: `exists: false` and `content: {"type": "doc", "content": []}` in JSON, ' +
          'an empty body in the other formats, and `X-Palimpsest-Exists: false` on all of them. ' +
          'HTML answers carry `Content-Security-Policy: default-src \'none\'; sandbox`.',
        parameters: [docParam,
          { name: 'format', in: 'query', schema: { enum: ['json', 'html', 'markdown', 'text'], default: 'json' } },
          { name: 'field', in: 'query', schema: { type: 'string', default: 'default' }, description: 'the Yjs root type to read; default: the demo editor\'s Y.XmlFragment' },
          atParam('default: the latest seq')],
        responses: {
          200: {
            description: 'The content; text formats as the body, JSON as an object',
            headers: { 'X-Palimpsest-Seq': { description: 'the seq of this content', schema: { type: 'string' } }, ...existsHeader },
            content: {
              'text/plain': { schema: { type: 'string' } },
              'text/html': { schema: { type: 'string' } },
              'text/markdown': { schema: { type: 'string' } },
              ...json({
                type: 'object', required: ['doc', 'field', 'seq', 'exists', 'content'],
                properties: {
                  doc: { type: 'string' }, field: { type: 'string' }, seq: { type: 'integer', minimum: 0 }, exists: { type: 'boolean' },
                  content: { type: 'object', description: 'ProseMirror JSON: {"type": "doc", "content": [ … ]}' },
                },
              }),
            },
          },
          ...documentErrors,
          404: ref('UnknownSeq'),
          409: ref('FieldTypeMismatch'),
          410: ref('HistoryPruned'),
          503: ref('ContentUnavailable'),
        },
      },
      post: {
        summary: 'Write Markdown, HTML or ProseMirror JSON into the editor field, replacing its content (mode=replace, the default) or after it (mode=append); ' +
          'logged with the token\'s user and display name, applied to the live document; answers once committed',
        parameters: [docParam,
          { name: 'mode', in: 'query', schema: { enum: ['replace', 'append'], default: 'replace' } },
          { name: 'field', in: 'query', schema: { type: 'string', default: 'default' }, description: 'the Y.XmlFragment to write' }],
        requestBody: {
          required: true,
          content: {
            'text/markdown': { schema: { type: 'string' } },
            'text/html': { schema: { type: 'string' } },
            ...json({ type: 'object', description: 'ProseMirror JSON of the editor\'s schema: {"type": "doc", "content": [ … ]}' }),
          },
        },
        responses: {
          200: {
            description: 'seq is the entry that holds the change (the latest seq when the content was already there)',
            content: json({ type: 'object', required: ['doc', 'seq'], properties: { doc: { type: 'string' }, seq: { type: 'integer' } } }),
          },
          ...writeErrors,
          400: ref('MalformedContent'),
          409: ref('FieldTypeMismatch'),
          413: ref('WriteTooLarge'),
          415: ref('UnsupportedMediaType'),
          422: ref('SchemaMismatch'),
          503: ref('ConversionQueueFull'),
        },
      },
    },
    '/api/documents/{doc}/compact': {
      post: {
        summary: 'Write a snapshot at the latest seq now',
        parameters: [docParam],
        responses: { 200: { description: 'Compaction result', content: json({ $ref: '#/components/schemas/CompactionResult' }) }, ...writeErrors },
      },
    },
  },
} as const;
