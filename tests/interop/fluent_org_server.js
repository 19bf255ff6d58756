// A FluentServer (@fluent-org/logger) that prints every entry as one JSON line:
//   {"tag":..., "time":[sec, nsec] or sec, "record":{...}}
// usage: node fluent_org_server.js PORT [SHARED_KEY]
// Prints "listening" once ready; exits on SIGTERM.
"use strict";
const { FluentServer, EventTime } = require("@fluent-org/logger");

const [port, sharedKey] = process.argv.slice(2);
const options = { listenOptions: { host: "127.0.0.1", port: Number(port) } };
if (sharedKey) {
  options.security = {
    serverHostname: "node-server",
    sharedKey,
    authorize: false,
    userDict: {},
  };
}
const server = new FluentServer(options);
server.on("entry", (tag, time, record) => {
  const t = time instanceof EventTime ? [time.epoch, time.nano] : time;
  process.stdout.write(JSON.stringify({ tag, time: t, record }) + "\n");
});
server.listen().then(() => process.stdout.write("listening\n"));
process.on("SIGTERM", () => server.close().then(() => process.exit(0)));
