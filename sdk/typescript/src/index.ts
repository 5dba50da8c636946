// thrifty's management API from TypeScript: the types are generated from the OpenAPI document
// (src/schema.ts, by openapi-typescript); openapi-fetch makes every call typed by path and method.
//
//   import { createThriftyClient } from "@thrifty/client";
//   const api = createThriftyClient("http://127.0.0.1:8080", { token: process.env.THRIFTY_TOKEN });
//   const { data, error } = await api.GET("/api/v1/models", { params: { query: { limit: 50 } } });
//
// Refusals come back as `error`: { error, message, fix } (the API's ThriftyError body).
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

export type { components, paths };
export type ErrorBody = components["schemas"]["ErrorBody"];

export interface ClientOptions {
  token?: string;
  /** Tries after the first on 429 / 502 / 503 / 504 (and 500 for GET), with doubling delays. */
  retries?: number;
  retryDelayMs?: number;
  fetch?: typeof globalThis.fetch;
}

const RETRY = new Set([429, 502, 503, 504]);

/** A fetch that retries a busy server with backoff, as the Python SDK does. */
export function retryingFetch(options: ClientOptions = {}): typeof globalThis.fetch {
  const base = options.fetch ?? globalThis.fetch;
  const retries = options.retries ?? 4;
  const delayMs = options.retryDelayMs ?? 500;
  return async (input, init) => {
    const method = (init?.method ?? (input instanceof Request ? input.method : "GET")).toUpperCase();
    for (let attempt = 0; ; attempt++) {
      const request = input instanceof Request ? input.clone() : input;
      const response = await base(request, init);
      const retriable = RETRY.has(response.status) || (method === "GET" && response.status === 500);
      if (!retriable || attempt >= retries) return response;
      await new Promise((resolve) => setTimeout(resolve, delayMs * 2 ** attempt));
    }
  };
}

export function createThriftyClient(baseUrl: string, options: ClientOptions = {}) {
  const headers: Record<string, string> = options.token ? { Authorization: `Bearer ${options.token}` } : {};
  return createClient<paths>({ baseUrl: baseUrl.replace(/\/$/, ""), headers, fetch: retryingFetch(options) });
}

export type ThriftyClient = ReturnType<typeof createThriftyClient>;
