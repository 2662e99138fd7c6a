/** Who is logged in, as `GET /api/auth/whoami` says. */
export interface Caller {
  kind: string;
  role: string;
  username: string | null;
  /** The API token's name, when one was shown. */
  token_name: string | null;
  tenant_id: string | null;
}
