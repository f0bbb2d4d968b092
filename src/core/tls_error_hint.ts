/**
 * What to change when a TLS handshake with a server fails: Node's certificate errors turned
 * into a hint naming the connection file's `ssl` keys. Empty when the error is not one of them.
 */
export function tlsErrorHint(message: string): string {
  if (/altnames|does not match certificate/i.test(message)) {
    return "the server certificate does not name this host: connect by a name it lists, or " +
      "set ssl.hostname-verification: false";
  }
  if (/self.signed|unable to (verify|get local issuer)|certificate chain/i.test(message)) {
    return "the server certificate is not trusted: set ssl.root-cert or ssl.trust-store to its CA";
  }
  if (/certificate has expired|not yet valid/i.test(message)) {
    return "the server certificate is out of its validity period";
  }
  // node-postgres: "The server does not support SSL connections"; mysql2: "Server does not
  // support secure connection".
  if (/does not support (SSL|secure connection)/i.test(message)) {
    return "the server does not accept TLS: remove the `ssl` section or turn TLS on in the server";
  }
  return "";
}
