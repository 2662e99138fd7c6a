/** Who is logged in, as `GET /api/auth/whoami` says. */
export interface Caller {
  kind: string;
  role: string;
  username: string | null;
  tenant_id: string | null;
}
