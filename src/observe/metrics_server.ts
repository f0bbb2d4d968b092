/**
 * `--metrics-port`: GET /metrics (Prometheus text format 0.0.4) and GET /health (JSON
 * `{status, …}`: 200 when ready or lagging, 503 when failed), over node:http.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { PROMETHEUS_CONTENT_TYPE } from "./metrics.ts";
import type { ReplicantMetrics } from "./replicant_metrics.ts";

export interface MetricsServer {
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

export function startMetricsServer(
  metrics: ReplicantMetrics,
  port: number,
  host = "127.0.0.1",
  extra: () => Record<string, unknown> = () => ({}),
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { "content-type": "text/plain", allow: "GET, HEAD" });
      res.end("method not allowed\n");
      return;
    }
    try {
      if (path === "/metrics") {
        const body = metrics.render();
        res.writeHead(200, { "content-type": PROMETHEUS_CONTENT_TYPE });
        res.end(req.method === "HEAD" ? undefined : body);
      } else if (path === "/health") {
        const report = { ...metrics.health.report(), ...extra() };
        res.writeHead(report.status === "failed" ? 503 : 200, {
          "content-type": "application/json",
        });
        res.end(req.method === "HEAD" ? undefined : JSON.stringify(report) + "\n");
      } else {
        res.writeHead(404, { "content-type": "text/plain" });
        res.end("not found: try /metrics or /health\n");
      }
    } catch (err) {
      res.writeHead(500, { "content-type": "text/plain" });
      res.end(`${(err as Error).message}\n`);
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const addr = server.address() as AddressInfo;
      resolve({
        port: addr.port,
        host,
        close: () =>
          new Promise<void>((r) => {
            server.close(() => r());
            (server as { closeAllConnections?: () => void }).closeAllConnections?.();
          }),
      });
    });
  });
}
