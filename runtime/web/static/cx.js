// What the web chat and the agent desk share: calls to the web gateway and its event sockets.
"use strict";

const cx = {
  // POST /v1/<op> with the token; resolves to the result, rejects with {type, message}.
  async call(token, op, args) {
    const response = await fetch(`/v1/${op}`, {
      method: "POST",
      headers: { "Authorization": `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify(args || {}),
    });
    const body = await response.json();
    if (!response.ok) throw body.error;
    return body.result;
  },

  // A WebSocket on `path` that sends the token first; onFrame(frame) for each JSON frame,
  // onClose(code, lastFrame) when it closes.
  watch(token, path, onFrame, onClose) {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${path}`);
    let last = null;
    socket.onopen = () => socket.send(JSON.stringify({ token }));
    socket.onmessage = (message) => { last = JSON.parse(message.data); onFrame(last); };
    socket.onclose = (event) => onClose(event.code, last);
    return socket;
  },

  // The subject of a token (its payload is readable; only the server checks the signature).
  subject(token) {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload)).sub;
  },

  // fn(...args) at most once every `ms`: a call sooner is dropped. The pages send typing
  // through it at the engine's own pace (one indicator per sender every 3 s; the engine
  // accepts one sooner and pushes nothing), so that a keystroke is not a request.
  throttle(fn, ms) {
    let last = -Infinity;
    return (...args) => {
      const now = Date.now();
      if (now - last < ms) return;
      last = now;
      fn(...args);
    };
  },

  // Show "<who> is typing…" in `element` until `ms` pass without another indicator or
  // clear() is called (the typist's message arrived).
  typing(element, ms) {
    let timer = null;
    const clear = () => { clearTimeout(timer); element.textContent = ""; };
    return {
      show(who) {
        element.textContent = `${who} is typing…`;
        clearTimeout(timer);
        timer = setTimeout(clear, ms);
      },
      clear,
    };
  },

  // One line of a transcript: who, then what they wrote.
  line(list, who, text, kind) {
    const item = document.createElement("li");
    item.className = kind;
    const name = document.createElement("b");
    name.textContent = `${who}: `;
    item.append(name, document.createTextNode(text));
    list.append(item);
    item.scrollIntoView({ block: "end" });
  },
};
