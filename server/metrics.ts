// Prometheus metrics of one server, on a registry of its own (several servers
// can live in one process, as in the tests). Served at GET /metrics.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics(instanceId: string) {
  const registry = new Registry();
  registry.setDefaultLabels({ instance_id: instanceId });
  // The standard names (process_cpu_seconds_total, nodejs_heap_size_used_bytes, …),
  // which ready-made dashboards and alerts expect; instance_id tells servers apart.
  collectDefaultMetrics({ register: registry });
  const latencyBuckets = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
  const metrics = {
    registry,
    connections: new Gauge({ name: 'palimpsest_connections', help: 'Open WebSocket connections', labelNames: ['protocol'], registers: [registry] }),
    documentsLoaded: new Gauge({ name: 'palimpsest_documents_loaded', help: 'Documents held in memory', registers: [registry] }),
    documentLoadSeconds: new Histogram({ name: 'palimpsest_document_load_seconds', help: 'Time to load a document from snapshot and log', buckets: latencyBuckets, registers: [registry] }),
    appendSeconds: new Histogram({ name: 'palimpsest_append_seconds', help: 'Time from receiving an update to its commit', buckets: latencyBuckets, registers: [registry] }),
    appendsLogged: new Counter({
      name: 'palimpsest_appends_logged_total',
      help: 'Entries appended to the log, whatever wrote them (WebSocket clients, REST writes and restores, the server\'s own changes and repairs)',
      registers: [registry],
    }),
    appendsSkipped: new Counter({
      name: 'palimpsest_appends_skipped_total',
      help: 'Updates the log already held, whatever sent them (resends, repeated sync step 2, empty updates, REST writes of what is there)',
      registers: [registry],
    }),
    appendFailures: new Counter({
      name: 'palimpsest_append_failures_total',
      help: 'Appends that could not be written, whatever wrote them (WebSocket clients, REST writes and restores, the server\'s own changes and repairs)',
      registers: [registry],
    }),
    bytesLogged: new Counter({ name: 'palimpsest_bytes_logged_total', help: 'Bytes of the entries appended to the log (their size), whatever wrote them', registers: [registry] }),
    compactions: new Counter({
      name: 'palimpsest_compactions_total',
      help: 'Compactions by outcome: written (a snapshot, automatic or asked for through the API) or failed',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    repairs: new Counter({ name: 'palimpsest_repairs_total', help: 'Appends of a live document\'s whole state after a failed append, by outcome', labelNames: ['outcome'], registers: [registry] }),
    throttled: new Counter({ name: 'palimpsest_throttled_total', help: 'Times a connection was slowed (its socket not read for a while), by reason', labelNames: ['reason'], registers: [registry] }),
    contentConversionsWaiting: new Gauge({
      name: 'palimpsest_content_conversions_waiting', help: 'Content conversions (REST Markdown, HTML, JSON) waiting for the converter', registers: [registry],
    }),
    refusals: new Counter({ name: 'palimpsest_refusals_total', help: 'Connections or messages refused, by reason', labelNames: ['reason'], registers: [registry] }),
  };
  // Every outcome has a sample from the start: a rate() over a series that
  // appears only with its first event misses that event.
  for (const outcome of ['written', 'failed']) metrics.compactions.inc({ outcome }, 0);
  return metrics;
}

export type Metrics = ReturnType<typeof createMetrics>;
