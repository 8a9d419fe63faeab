// OpenAPI 3.1 description of the REST API, served at /api/openapi.json.

const docParam = {
  name: 'doc', in: 'path', required: true,
  description: 'Document name, percent-encoded as one path segment (a/b → a%2Fb)',
  schema: { type: 'string', pattern: '^[A-Za-z0-9._~:-][A-Za-z0-9._~:/-]{0,254}$' },
};

const error = {
  description: 'Error',
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
};

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'Palimpsest document API',
    version: '1',
    description: 'History, state and restore of the documents of a Palimpsest server. ' +
      'When the server has authentication configured, send the same JWT as the WebSocket clients as `Authorization: Bearer <token>`.',
  },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
    schemas: {
      Error: {
        type: 'object',
        properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } }, required: ['code', 'message'] } },
      },
      LogEntry: {
        type: 'object',
        required: ['seq', 'receivedAt', 'instanceId', 'user', 'size', 'update'],
        properties: {
          seq: { type: 'integer', minimum: 1 },
          receivedAt: { type: 'string', format: 'date-time' },
          instanceId: { type: 'string' },
          user: { type: ['string', 'null'] },
          size: { type: 'integer', description: 'bytes of the logged update' },
          update: { type: 'string', contentEncoding: 'base64', description: 'the logged Yjs update (v1)' },
        },
      },
    },
  },
  security: [{ bearer: [] }, {}],
  paths: {
    '/api/documents': {
      get: { summary: 'List document names', responses: { 200: { description: 'Names', content: { 'application/json': { schema: { type: 'object', properties: { documents: { type: 'array', items: { type: 'string' } } } } } } }, 401: error } },
    },
    '/api/documents/{doc}': {
      get: { summary: 'Document info: last seq, snapshots, retained history', parameters: [docParam], responses: { 200: { description: 'Info' }, 400: error, 404: error } },
    },
    '/api/documents/{doc}/history': {
      get: {
        summary: 'Log entries, oldest first',
        parameters: [docParam,
          { name: 'after', in: 'query', schema: { type: 'integer', minimum: 0 }, description: 'only entries with a greater seq' },
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 10000, default: 1000 } }],
        responses: { 200: { description: 'Entries', content: { 'application/json': { schema: { type: 'array', items: { $ref: '#/components/schemas/LogEntry' } } } } }, 400: error },
      },
    },
    '/api/documents/{doc}/state': {
      get: {
        summary: 'The state at a seq as one Yjs update (binary, or JSON with Accept: application/json)',
        parameters: [docParam, { name: 'at', in: 'query', schema: { type: 'integer', minimum: 0 }, description: 'default: the latest seq' }],
        responses: { 200: { description: 'State; the seq is in the X-Palimpsest-Seq header' }, 404: error, 410: error },
      },
    },
    '/api/documents/{doc}/restore': {
      post: {
        summary: 'Restore the state at a seq by appending an update that undoes every later change',
        parameters: [docParam],
        requestBody: { required: true, content: { 'application/json': { schema: { type: 'object', required: ['seq'], properties: { seq: { type: 'integer', minimum: 0 } } } } } },
        responses: { 200: { description: '{ doc, restoredTo, seq } — seq of the new entry' }, 400: error, 404: error, 410: error },
      },
    },
    '/api/documents/{doc}/compact': {
      post: { summary: 'Write a snapshot at the latest seq now', parameters: [docParam], responses: { 200: { description: 'Compaction result' }, 400: error } },
    },
  },
} as const;
