// Type-checked usage (tsc --noEmit): if the API's shapes change, this stops compiling.
import { createThriftyClient } from "./index";

export async function cheapestDeployments(url: string, token: string): Promise<string[]> {
  const api = createThriftyClient(url, { token });
  const { data, error } = await api.GET("/api/v1/deployments", { params: { query: { limit: 100 } } });
  if (error) throw new Error(`${error.message} (${error.fix ?? "no fix given"})`);
  return data.items
    .filter((d) => d.usd_per_month !== null)
    .sort((a, b) => (a.usd_per_month ?? 0) - (b.usd_per_month ?? 0))
    .map((d) => `${d.name}: $${d.usd_per_month}/month on ${d.provider}`);
}

export async function deployAndPoll(url: string, token: string, model: string): Promise<string> {
  const api = createThriftyClient(url, { token });
  const started = await api.POST("/api/v1/deployments", { body: { model, parameters: { p95_ms: 50 } } });
  if (started.error || !started.data) throw new Error("deploy refused");
  const polled = await api.GET("/api/v1/operations/{op_id}", { params: { path: { op_id: started.data.id } } });
  return polled.data?.state ?? "unknown";
}
