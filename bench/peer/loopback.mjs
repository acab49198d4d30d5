// Preloaded into the Portkey gateway by bench/peer.sh (node --import): its
// start-server.js listens on every interface; the benchmark must reach
// loopback only, so every server listen() is bound to 127.0.0.1.
import net from "node:net";

const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === "object" && args[0] !== null) {
    args[0] = { ...args[0], host: "127.0.0.1" };
  } else if (typeof args[0] === "number" || typeof args[0] === "string") {
    const port = args[0];
    const rest = args.slice(1).filter((a) => typeof a === "function" || (typeof a === "number" && a !== port));
    const cb = rest.find((a) => typeof a === "function");
    const backlog = rest.find((a) => typeof a === "number");
    return listen.call(this, { port: Number(port), host: "127.0.0.1", backlog }, cb);
  }
  return listen.apply(this, args);
};
