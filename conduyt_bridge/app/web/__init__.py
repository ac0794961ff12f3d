"""The bridge's HTTP server and web console (`docs/console.md`): `server` (routes and
operational endpoints), `pages` (HTML and login), `security` (token, CSRF, CSP), `api`
(JSON routes), `live` (Server-Sent Events from the bus), `commands` (console commands on
the Conduyt layout's code path), `console_doc` and `status` (the documents), `static/`
(HTML, CSS, JavaScript; no build step)."""
