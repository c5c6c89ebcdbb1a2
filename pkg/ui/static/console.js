// dockerfaasd console: the only script. It follows a function's logs
// (/system/logs, NDJSON), submits namespace selectors on change and asks
// for confirmation before the delete buttons that carry data-confirm.
// Every page works without it, except the logs.
"use strict";

document.querySelectorAll("select[data-autosubmit]").forEach((s) => {
  s.addEventListener("change", () => s.form.submit());
});

document.querySelectorAll("form[data-confirm]").forEach((f) => {
  f.addEventListener("submit", (e) => {
    if (!window.confirm(f.dataset.confirm)) e.preventDefault();
  });
});

(function logs() {
  const pre = document.getElementById("logs");
  const follow = document.getElementById("logs-follow");
  const state = document.getElementById("logs-state");
  if (!pre) return;
  const maxLines = 2000;
  let ctrl = null;

  function append(line) {
    pre.appendChild(document.createTextNode(line + "\n"));
    while (pre.childNodes.length > maxLines) pre.removeChild(pre.firstChild);
    pre.scrollTop = pre.scrollHeight;
  }

  function format(msg) {
    const ts = msg.timestamp ? msg.timestamp.replace("T", " ").replace(/\.\d+/, "") + " " : "";
    const inst = msg.instance ? "[" + String(msg.instance).slice(0, 12) + "] " : "";
    return ts + inst + (msg.text || "").replace(/\n$/, "");
  }

  async function load(followNew) {
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    const mine = ctrl;
    pre.textContent = "";
    state.textContent = followNew ? "following…" : "loading…";
    const url = pre.dataset.src + "&tail=100&follow=" + (followNew ? "true" : "false");
    try {
      const res = await fetch(url, { signal: mine.signal, credentials: "same-origin" });
      if (!res.ok) {
        state.textContent = "logs: " + res.status + " " + (await res.text()).trim();
        return;
      }
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (!line.trim()) continue;
          try {
            append(format(JSON.parse(line)));
          } catch (_) {
            append(line);
          }
        }
      }
      if (mine === ctrl) state.textContent = followNew ? "stream ended" : "last 100 lines";
      if (!pre.textContent) pre.textContent = "(no log lines)";
    } catch (e) {
      if (e.name !== "AbortError") state.textContent = "logs: " + e.message;
    }
  }

  follow.addEventListener("change", () => {
    if (follow.checked) {
      load(true);
    } else {
      if (ctrl) ctrl.abort();
      state.textContent = "stopped";
    }
  });
  load(false);
})();
