// Sends fixed events to in_forward with the classic fluent-logger package.
// usage: node fluent_logger_client.js PORT
"use strict";
const logger = require("fluent-logger");

const port = Number(process.argv[2]);
const sender = logger.createFluentSender("legacy", {
  host: "127.0.0.1",
  port,
  timeout: 3.0,
  reconnectInterval: 600000,
  requireAckResponse: true,
  ackResponseTimeout: 10000,
});
let pending = 3;
let failed = false;
sender.on("error", (e) => {
  failed = true;
  console.error(String(e));
});
for (let i = 0; i < 3; i++) {
  sender.emit("ev", { i, ok: i % 2 === 0 }, 1700000100 + i, (err) => {
    if (err) {
      failed = true;
      console.error(String(err));
    }
    pending -= 1;
    if (pending === 0) {
      sender.end();
      process.exit(failed ? 1 : 0);
    }
  });
}
setTimeout(() => {
  console.error("timeout");
  process.exit(1);
}, 20000);
