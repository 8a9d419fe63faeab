// A Server-Sent Events reader for tests, over fetch: it parses the stream as
// the EventSource specification says (fields `id`, `event`, `data`; a blank
// line ends an event; lines starting with ':' are comments) and can be cut at
// any moment, as a dropped connection would be.

export interface StreamEvent {
  id: string | null;
  event: string;
  data: string;
}

export interface EventStreamReader {
  readonly events: StreamEvent[];
  /** The HTTP status and content type of the answer. */
  readonly status: number;
  readonly contentType: string;
  /** Resolves when the server ends the stream, it is cut or it fails (see error). */
  readonly ended: Promise<void>;
  /** Why the stream failed, when the server dropped it. */
  error(): Error | null;
  /** Cuts the connection, as a network failure would. */
  cut(): void;
}

export async function openEventStream(url: string, headers: Record<string, string> = {}): Promise<EventStreamReader> {
  const controller = new AbortController();
  const response = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal });
  const events: StreamEvent[] = [];
  let failure: Error | null = null;
  const ended = (async () => {
    if (response.body === null) return;
    const decoder = new TextDecoder();
    let buffer = '';
    let current: StreamEvent = { id: null, event: 'message', data: '' };
    let hasData = false;
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline).replace(/\r$/, '');
          buffer = buffer.slice(newline + 1);
          if (line === '') {
            if (hasData) events.push(current);
            current = { id: null, event: 'message', data: '' };
            hasData = false;
          } else if (!line.startsWith(':')) {
            const colon = line.indexOf(':');
            const field = colon < 0 ? line : line.slice(0, colon);
            const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
            if (field === 'id') current.id = value;
            else if (field === 'event') current.event = value;
            else if (field === 'data') {
              current.data = hasData ? `${current.data}\n${value}` : value;
              hasData = true;
            }
          }
        }
      }
    } catch (error) {
      if (!controller.signal.aborted) failure = error as Error;
    }
  })();
  return {
    events,
    status: response.status,
    contentType: response.headers.get('content-type') ?? '',
    ended,
    error: () => failure,
    cut: () => controller.abort(),
  };
}
