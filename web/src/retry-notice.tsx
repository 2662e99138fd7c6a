import { useEffect, useState } from "react";
import { type SubmitRetry, whenRetrying } from "./api.js";

/**
 * Says, above every page, that a submit is being sent again and why (a 503 while the server's
 * database restarts, a dropped connection), and when; gone once the submit lands or gives up.
 */
export function RetryNotice() {
  const [retry, setRetry] = useState<SubmitRetry>(null);
  useEffect(() => whenRetrying(setRetry), []);
  if (!retry) return null;
  const seconds = Math.max(1, Math.round(retry.waitMs / 1000));
  return (
    <p className="retry-notice" role="status">
      Sending again in {seconds} s (attempt {retry.attempt}): {retry.reason}. The same request goes again, so
      it takes effect once.
    </p>
  );
}
