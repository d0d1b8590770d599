import { RtmError } from "./errors.js";

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** One JSON request; an error answer becomes an `RtmError` with the protocol's code. */
export async function requestJson<T>(
  fetchFn: FetchLike,
  url: string,
  init: { method?: string; body?: unknown; token?: string | undefined } = {},
): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (init.body !== undefined) headers["content-type"] = "application/json";
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  let response: Response;
  try {
    response = await fetchFn(url, {
      method: init.method ?? "GET",
      headers,
      body: init.body === undefined ? null : JSON.stringify(init.body),
    });
  } catch (error) {
    throw new RtmError("network", `${init.method ?? "GET"} ${url}: ${String(error)}`);
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!response.ok) {
    const error = (parsed as { error?: Record<string, unknown> } | undefined)?.error ?? {};
    const retry = Number(error.retry_after_ms ?? Number(response.headers.get("retry-after")) * 1000);
    throw new RtmError(
      String(error.code ?? `http_${response.status}`),
      String(error.message ?? response.statusText),
      response.status,
      error.field === undefined ? undefined : String(error.field),
      Number.isFinite(retry) && retry > 0 ? retry : undefined,
    );
  }
  return parsed as T;
}
