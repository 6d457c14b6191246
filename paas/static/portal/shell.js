/* The web shell's page: xterm.js (vendored) on the shell's WebSocket. Lines are edited on the server;
   this only forwards keystrokes and the terminal's size, and writes what the server sends. */
(function () {
  "use strict";
  function start() {
    var box = document.getElementById("shell-terminal");
    var status = document.getElementById("shell-status");
    if (!box || !window.Terminal) { return; }
    var term = new window.Terminal({ cursorBlink: true, convertEol: false, fontSize: 14, scrollback: 5000 });
    var fit = new window.FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(box);
    fit.fit();
    var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    var socket = new WebSocket(scheme + window.location.host + box.dataset.wsPath);
    function send(message) {
      if (socket.readyState === WebSocket.OPEN) { socket.send(JSON.stringify(message)); }
    }
    function resize() { fit.fit(); send({ t: "r", c: term.cols, r: term.rows }); }
    socket.onopen = function () { status.textContent = "Connected."; resize(); term.focus(); };
    socket.onmessage = function (event) { term.write(event.data); };
    socket.onclose = function (event) {
      status.textContent = event.code === 4404 ? "No such instance, or you may not use it." :
        "The session ended" + (event.code && event.code !== 1000 ? " (" + event.code + ")." : ".");
      term.options.disableStdin = true;
    };
    term.onData(function (data) { send({ t: "i", d: data }); });
    window.addEventListener("resize", resize);
    window.addEventListener("pagehide", function () { socket.close(); });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
