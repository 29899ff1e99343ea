// A Test Runner App that speaks exactly as the existing PIT toolkit's Node test apps do
// (examples/node-1/pit-test-app there), without their packages:
// - POST /start {testSuiteId} answers {"sessionId":"1",...}: the id as a string;
// - GET /status?sessionId=1 and GET /reports?sessionId=1 answer with the id as a NUMBER;
// - no `wait` long poll: /status answers at once;
// - a missing or unknown sessionId is HTTP 422 with a text body;
// - reports: data.executedScenarios, each with a SCALAR throughput and a DISTRIBUTION latency
//   by percentile ({"50": …, "95": …, "99": …}); `data: null` until COMPLETED.
// It calls $TARGET_SERVICE_URL/time ITERATIONS times per scenario (default 200).
"use strict"
const http = require("http")
const fs = require("fs")

const target = process.env.TARGET_SERVICE_URL
const iterations = parseInt(process.env.ITERATIONS || "200")
let globalSessionId = 0
const sessions = new Map()

const json = (res, body) => {
  res.writeHead(200, { "Content-Type": "application/json; charset=utf-8" })
  res.end(JSON.stringify(body))
}
const text = (res, status, body) => {
  res.writeHead(status, { "Content-Type": "text/html; charset=utf-8" })
  res.end(body)
}

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]

async function runScenario(name, count, requiredRate) {
  const startTime = new Date()
  const latencies = []
  for (let i = 0; i < count; i++) {
    const t0 = process.hrtime.bigint()
    const response = await fetch(`${target}/time`)
    await response.text()
    if (response.ok) latencies.push(Number(process.hrtime.bigint() - t0) / 1e6)
  }
  const endTime = new Date()
  const rate = latencies.length / ((endTime.getTime() - startTime.getTime()) / 1000.0)
  latencies.sort((a, b) => a - b)
  const distribution = Object.fromEntries(new Map([50, 95, 99].map((p) => [p, percentile(latencies, p)])))
  return {
    name,
    startTime,
    endTime,
    streams: [
      {
        name: "default",
        requirements: [{ type: "SCALAR", name: "throughput", value: requiredRate }],
        observations: [
          { type: "SCALAR", name: "throughput", value: rate },
          { type: "DISTRIBUTION", name: "latency", value: distribution },
        ],
        outcome: rate >= requiredRate ? "PASS" : "FAIL",
      },
    ],
  }
}

async function runTests(sessionId) {
  const session = sessions.get(sessionId)
  session.status = "RUNNING"
  try {
    const executedScenarios = [
      await runScenario(`GET /time x ${iterations}`, iterations, 1),
      await runScenario(`GET /time x ${iterations * 2}`, iterations * 2, 1),
    ]
    sessions.set(sessionId, { ...session, status: "COMPLETED", reportEnvelope: { executedScenarios } })
  } catch (e) {
    sessions.set(sessionId, { ...session, status: "ERROR", error: e.message })
  }
}

function sessionOf(req, res) {
  const raw = new URL(req.url, "http://x").searchParams.get("sessionId")
  if (!raw) return text(res, 422, 'Invalid parameter "sessionId"')
  const sessionId = parseInt(raw + "")
  if (!sessions.has(sessionId)) return text(res, 422, "No such session")
  return sessionId
}

const server = http.createServer((req, res) => {
  const path = new URL(req.url, "http://x").pathname
  if (req.method === "POST" && path === "/start") {
    let body = ""
    req.on("data", (chunk) => (body += chunk))
    req.on("end", () => {
      const { testSuiteId } = JSON.parse(body)
      const sessionId = ++globalSessionId
      sessions.set(sessionId, { sessionId, testSuiteId, status: "PENDING" })
      setTimeout(() => runTests(sessionId), 0)
      json(res, { sessionId: sessionId.toString(), testSuiteId })
    })
  } else if (req.method === "GET" && path === "/status") {
    const sessionId = sessionOf(req, res)
    if (sessionId === undefined) return
    const { testSuiteId, status } = sessions.get(sessionId)
    json(res, { sessionId, testSuiteId, status })
  } else if (req.method === "GET" && path === "/reports") {
    const sessionId = sessionOf(req, res)
    if (sessionId === undefined) return
    const { status, testSuiteId, reportEnvelope, error } = sessions.get(sessionId)
    if (status !== "COMPLETED") return json(res, { sessionId, testSuiteId, status, data: null, error })
    json(res, { sessionId, testSuiteId, status, data: reportEnvelope })
  } else {
    text(res, 404, "Not Found")
  }
})
server.listen(0, "127.0.0.1", () => {
  const url = `http://127.0.0.1:${server.address().port}`
  fs.writeFileSync(process.env.URL_FILE, url + "\n")
})
process.on("SIGTERM", () => server.close(() => process.exit(0)))
