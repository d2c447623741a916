/**
 * The Docker-style error body alone, without the error mapping (errors.ts), which pulls
 * in Connect: the Docker socket's first stage answers with it before Connect loads.
 */
export function dockerError(status: number, message: string, headers?: Record<string, string>): Response {
  // The docker CLI parses error bodies only when Content-Type is exactly "application/json".
  return new Response(JSON.stringify({ message }), { status, headers: { "Content-Type": "application/json", ...headers } });
}
