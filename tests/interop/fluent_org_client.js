// Sends fixed events to in_forward with @fluent-org/logger.
// usage: node fluent_org_client.js PORT MODE [SHARED_KEY]
//   MODE: Message | Forward | PackedForward | CompressedPackedForward
// Exits 0 once every event is acknowledged; prints the error and exits 1 otherwise.
"use strict";
const { FluentClient, EventTime } = require("@fluent-org/logger");

const [port, mode, sharedKey] = process.argv.slice(2);
const options = {
  eventMode: mode,
  socket: { host: "127.0.0.1", port: Number(port), timeout: 10000, disableReconnect: true },
  ack: { ackTimeout: 10000 },
  flushInterval: 50,
};
if (sharedKey) {
  options.security = { clientHostname: "node-client", sharedKey };
}
const client = new FluentClient("node", options);
// A refused handshake closes the socket with an error instead of failing a promise.
client.socketOn("error", (e) => {
  console.error(String(e && e.message ? e.message : e));
  process.exit(1);
});
const timer = setTimeout(() => {
  console.error("timeout");
  process.exit(1);
}, 20000);
client
  .connect()
  .then(() => {
    const events = [];
    for (let i = 0; i < 5; i++) {
      events.push(
        client.emit("ev", { i, mode, s: "h\u00e9llo" }, new EventTime(1700000000 + i, 250000000))
      );
    }
    return Promise.all(events);
  })
  .then(() => client.disconnect())
  .then(() => {
    clearTimeout(timer);
    process.exit(0);
  })
  .catch((e) => {
    console.error(String(e && e.message ? e.message : e));
    process.exit(1);
  });
