// node-1: the service under test. `GET /time` answers the time, as the existing toolkit's
// node-1 does. Listens on a free loopback port and writes its URL to $URL_FILE.
"use strict"
const http = require("http")
const fs = require("fs")

const server = http.createServer((req, res) => {
  if (req.method === "GET" && req.url === "/time") {
    res.writeHead(200, { "Content-Type": "application/json; charset=utf-8" })
    res.end(JSON.stringify({ time: new Date().toISOString() }))
  } else {
    res.writeHead(404).end()
  }
})
server.listen(0, "127.0.0.1", () => {
  const url = `http://127.0.0.1:${server.address().port}`
  fs.writeFileSync(process.env.URL_FILE, url + "\n")
})
process.on("SIGTERM", () => server.close(() => process.exit(0)))
