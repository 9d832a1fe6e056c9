// Live data of running jobs over the web process's WebSocket (/ws/live): subscribe to (job, metrics, scope),
// receive only new points.  Reconnects with backoff; subscriptions are renewed after a reconnect.

export class LiveClient {
  constructor({onPoints, onEnded, onError, onStatus} = {}) {
    this.handlers = {onPoints, onEnded, onError, onStatus};
    this.subs = new Map();     // key -> {job, metrics, scope, have: () => {metric: n}}
    this.ws = null;
    this.backoff = 1000;
    this.closed = false;
    this.connect();
    window.addEventListener("pagehide", () => this.close());
  }

  url() {
    return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws/live`;
  }

  connect() {
    if (this.closed) return;
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.addEventListener("open", () => {
      this.backoff = 1000;
      this.handlers.onStatus?.("connected");
      for (const [key, s] of this.subs) this.sendSubscribe(key, s);
    });
    ws.addEventListener("message", (e) => {
      let msg;
      try { msg = JSON.parse(e.data); } catch { return; }
      if (msg.type === "points") this.handlers.onPoints?.(msg);
      else if (msg.type === "ended") { this.subs.delete(msg.key); this.handlers.onEnded?.(msg); }
      else if (msg.type === "error") this.handlers.onError?.(msg);
    });
    ws.addEventListener("close", () => {
      if (this.ws !== ws || this.closed) return;
      this.handlers.onStatus?.("disconnected");
      setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, 30000);
    });
  }

  sendSubscribe(key, s) {
    if (this.ws?.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({op: "subscribe", key, job: s.job, metrics: s.metrics, scope: s.scope, have: s.have()}));
  }

  /** (Re)subscribe `key`; `have()` tells how many points per metric the page already has. */
  subscribe(key, job, metrics, scope, have) {
    const s = {job, metrics, scope, have};
    this.subs.set(key, s);
    this.sendSubscribe(key, s);
  }

  unsubscribe(key) {
    this.subs.delete(key);
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({op: "unsubscribe", key}));
  }

  close() {
    this.closed = true;
    this.ws?.close(1000);
  }
}
