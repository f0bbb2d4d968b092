/**
 * A small fake AWS Secrets Manager: the GetSecretValue call of its JSON protocol, on a local
 * port, for AWS_ENDPOINT_URL_SECRETS_MANAGER. Unknown secrets answer
 * ResourceNotFoundException like the real service; every request is recorded.
 */
export interface FakeSecretsManager {
  url: string;
  requests: { target: string; secretId: string; authorization: string }[];
  close(): Promise<void>;
}

export function fakeSecretsManager(secrets: Record<string, string>): FakeSecretsManager {
  const requests: FakeSecretsManager["requests"] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const target = req.headers.get("x-amz-target") ?? "";
    const body = await req.json() as { SecretId: string };
    requests.push({
      target,
      secretId: body.SecretId,
      authorization: req.headers.get("authorization") ?? "",
    });
    const headers = { "content-type": "application/x-amz-json-1.1" };
    if (target !== "secretsmanager.GetSecretValue") {
      return new Response(JSON.stringify({ __type: "UnknownOperationException" }), {
        status: 400,
        headers,
      });
    }
    const secret = secrets[body.SecretId];
    if (secret === undefined) {
      return new Response(
        JSON.stringify({
          __type: "ResourceNotFoundException",
          message: "Secrets Manager can't find the specified secret.",
        }),
        { status: 400, headers },
      );
    }
    return new Response(
      JSON.stringify({
        ARN: `arn:aws:secretsmanager:us-east-1:000000000000:secret:${body.SecretId}-abc`,
        Name: body.SecretId,
        SecretString: secret,
        VersionId: "v1",
      }),
      { headers },
    );
  });
  const addr = server.addr as Deno.NetAddr;
  return { url: `http://127.0.0.1:${addr.port}`, requests, close: () => server.shutdown() };
}
