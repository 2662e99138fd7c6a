/** Letters, digits and `. _ @ -`, starting with a letter or digit: safe in a URL path and a log. */
export const usernamePattern = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/;

export const usernameRule =
  "a username is 1 to 64 letters, digits and . _ @ -, starting with a letter or digit";
