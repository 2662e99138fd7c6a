/**
 * The scripted API server's TLS: a throwaway CA and a serving certificate for 127.0.0.1 made with
 * openssl, as a cluster has its own CA. @kubernetes/client-node refuses a plain-HTTP server, and
 * the kubeconfig carries the CA (`certificate-authority-data`) so clients verify the server as
 * they would a cluster's.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface ServingCertificate {
  /** PEM of the CA that signed `cert`. */
  ca: string;
  cert: string;
  key: string;
}

export function makeServingCertificate(dir: string): ServingCertificate {
  mkdirSync(dir, { recursive: true });
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) =>
    execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(
    "req",
    "-x509",
    ...ec,
    "-keyout",
    file("ca.key"),
    "-out",
    file("ca.crt"),
    "-days",
    "2",
    "-subj",
    "/CN=scripted-kubernetes-ca",
  );
  openssl(
    "req",
    "-new",
    ...ec,
    "-keyout",
    file("server.key"),
    "-out",
    file("server.csr"),
    "-subj",
    "/CN=kube-apiserver",
  );
  writeFileSync(
    file("server.ext"),
    "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n",
  );
  openssl(
    "x509",
    "-req",
    "-in",
    file("server.csr"),
    "-CA",
    file("ca.crt"),
    "-CAkey",
    file("ca.key"),
    "-CAcreateserial",
    "-out",
    file("server.crt"),
    "-days",
    "2",
    "-extfile",
    file("server.ext"),
  );
  return {
    ca: readFileSync(file("ca.crt"), "utf8"),
    cert: readFileSync(file("server.crt"), "utf8"),
    key: readFileSync(file("server.key"), "utf8"),
  };
}
