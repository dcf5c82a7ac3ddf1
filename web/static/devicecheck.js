// devicecheck.js: the device check before joining a live room: camera preview and choice, microphone level,
// speaker test tone, network check against our server (/netcheck/*). No dependency on protocol.js.
//
// const check = new DeviceCheck(sectionElement, texts, {video, canPublish, uploadMax});
// check.start();                // asks for camera + microphone, starts the meter and the network check
// await check.takeStream()      // the previewed MediaStream (or null) for publishing; stops the meter
// check.net                      // {level: 0|1|2|3, rtt, down, up} once measured (0: could not measure)
//
// The check proposes, never chooses: a weak verdict points at the "audio only" box (data-join-audio-only) but never
// ticks it, and a measurement that failed or timed out (a busy PC, a blocked request) is "could not measure", not
// "weak". Round trips take the fastest of five pings: a loaded CPU delays some answers, the network none.
(function (global) {
  "use strict";

  const AUDIO = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  const LEVELS = { 3: "good", 2: "fair", 1: "weak", 0: "unknown" };

  async function timed(url, options, timeoutMs) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), timeoutMs);
    const t0 = performance.now();
    try {
      const res = await fetch(url, Object.assign({ cache: "no-store", credentials: "same-origin", signal: ctrl.signal }, options));
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      await res.arrayBuffer();
      return (performance.now() - t0) / 1000;
    } finally {
      clearTimeout(timer);
    }
  }

  class DeviceCheck {
    constructor(el, T, options) {
      this.el = el;
      this.T = T;
      this.opt = options || {};
      this.stream = null;
      this.audioCtx = null;
      this.meterTimer = null;
      this.net = null;
      this.netRunning = null;
      this.cameraError = null;
      this.q = (sel) => el.querySelector(sel);
    }

    start() {
      this.q("[data-cam-select]").addEventListener("change", () => this.open());
      this.q("[data-mic-select]").addEventListener("change", () => this.open());
      this.open();
      this.checkNetwork();
    }

    constraints() {
      const cam = this.q("[data-cam-select]").value;
      const mic = this.q("[data-mic-select]").value;
      const video = Object.assign({}, this.opt.video || { width: 640, height: 360 });
      if (cam) video.deviceId = { exact: cam };
      const audio = Object.assign({}, AUDIO);
      if (mic) audio.deviceId = { exact: mic };
      return { video, audio };
    }

    cameraMessage(err) {
      const T = this.T;
      const name = err && err.name;
      if (name === "NotAllowedError" || name === "SecurityError") return T.camDenied;
      if (name === "NotFoundError" || name === "OverconstrainedError") return T.camMissing;
      if (name === "NotReadableError" || name === "AbortError") return T.camBusy;
      return T.camMissing;
    }

    open() {
      // Re-open camera and microphone (first time, or another device chosen); takeStream() waits for it.
      this.opening = this.openDevices();
      return this.opening;
    }

    async openDevices() {
      const old = this.stream;
      if (old) old.getTracks().forEach((t) => t.stop());
      this.stream = null;
      const c = this.constraints();
      const msg = this.q("[data-cam-msg]");
      let stream = null;
      this.cameraError = null;
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        this.cameraError = this.T.noMediaDevices;
      } else {
        try {
          stream = await navigator.mediaDevices.getUserMedia(c);
        } catch (err) {
          this.cameraError = this.cameraMessage(err);
          try { stream = await navigator.mediaDevices.getUserMedia({ audio: c.audio }); } catch (e) {
            this.micError = this.cameraMessage(e);
          }
        }
      }
      this.stream = stream;
      const video = this.q("[data-check-video]");
      video.srcObject = stream && stream.getVideoTracks().length ? stream : null;
      msg.hidden = !this.cameraError;
      msg.textContent = this.cameraError ? `${this.cameraError} ${this.T.canStillWatch}` : "";
      await this.listDevices();
      this.startMeter();
      this.el.dispatchEvent(new CustomEvent("devicecheck:stream", { detail: { stream } }));
    }

    async listDevices() {
      if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
      let devices = [];
      try { devices = await navigator.mediaDevices.enumerateDevices(); } catch (e) { return; }
      const fill = (select, kind, track) => {
        const current = track ? (track.getSettings().deviceId || "") : select.value;
        const list = devices.filter((d) => d.kind === kind && d.deviceId);
        select.textContent = "";
        list.forEach((d, i) => {
          const o = document.createElement("option");
          o.value = d.deviceId;
          o.textContent = d.label || `${kind === "videoinput" ? this.T.camera : this.T.microphone} ${i + 1}`;
          if (d.deviceId === current) o.selected = true;
          select.appendChild(o);
        });
        if (!list.length) {
          const o = document.createElement("option");
          o.value = "";
          o.textContent = kind === "videoinput" ? this.T.noCamera : this.T.noMicrophone;
          select.appendChild(o);
        }
        select.disabled = list.length < 2;
      };
      const s = this.stream;
      fill(this.q("[data-cam-select]"), "videoinput", s && s.getVideoTracks()[0]);
      fill(this.q("[data-mic-select]"), "audioinput", s && s.getAudioTracks()[0]);
    }

    audioContext() {
      if (!this.audioCtx) {
        const Ctx = global.AudioContext || global.webkitAudioContext;
        if (!Ctx) return null;
        this.audioCtx = new Ctx();
      }
      if (this.audioCtx.state === "suspended") this.audioCtx.resume().catch(() => {});
      return this.audioCtx;
    }

    startMeter() {
      clearInterval(this.meterTimer);
      const bar = this.q("[data-mic-level]");
      const status = this.q("[data-mic-status]");
      const track = this.stream && this.stream.getAudioTracks()[0];
      if (!track) {
        bar.style.width = "0%";
        status.dataset.level = "1";
        status.textContent = this.T.micNone;
        return;
      }
      const ctx = this.audioContext();
      if (!ctx) return;
      if (this.meterSource) this.meterSource.disconnect();
      const source = ctx.createMediaStreamSource(new MediaStream([track]));
      const analyser = ctx.createAnalyser();
      analyser.fftSize = 1024;
      source.connect(analyser);
      this.meterSource = source;
      const data = new Float32Array(analyser.fftSize);
      let level = 0;
      let heard = false;
      status.dataset.level = "2";
      status.textContent = this.T.micSpeak;
      // Resume the audio context on the first click if the browser kept it suspended.
      const wake = () => { if (ctx.state === "suspended") ctx.resume().catch(() => {}); };
      this.el.addEventListener("pointerdown", wake, { once: true });
      this.meterTimer = setInterval(() => {
        analyser.getFloatTimeDomainData(data);
        let sum = 0;
        for (let i = 0; i < data.length; i++) sum += data[i] * data[i];
        const rms = Math.sqrt(sum / data.length);
        level = Math.max(rms * 5, level * 0.8);
        const pct = Math.min(100, Math.round(level * 100));
        bar.style.width = `${pct}%`;
        bar.dataset.hot = pct > 85 ? "1" : "0";
        if (!heard && pct > 4) {
          heard = true;
          status.dataset.level = "3";
          status.textContent = this.T.micWorks;
        }
      }, 80);
    }

    stopMeter() {
      clearInterval(this.meterTimer);
      this.meterTimer = null;
      if (this.meterSource) this.meterSource.disconnect();
      this.meterSource = null;
    }

    playTone() {
      // Two short beeps (660 Hz, then 880 Hz) with soft edges: the speaker test.
      const ctx = this.audioContext();
      if (!ctx) return;
      const t = ctx.currentTime + 0.05;
      [[660, 0], [880, 0.35]].forEach(([freq, at]) => {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.type = "sine";
        osc.frequency.value = freq;
        gain.gain.setValueAtTime(0, t + at);
        gain.gain.linearRampToValueAtTime(0.35, t + at + 0.02);
        gain.gain.setValueAtTime(0.35, t + at + 0.22);
        gain.gain.linearRampToValueAtTime(0, t + at + 0.28);
        osc.connect(gain).connect(ctx.destination);
        osc.start(t + at);
        osc.stop(t + at + 0.3);
      });
    }

    // ---------------------------------------------------------------- network

    checkNetwork() {
      if (!this.netRunning) this.netRunning = this.measure().finally(() => { this.netRunning = null; });
      return this.netRunning;
    }

    async measure() {
      const T = this.T;
      const box = this.q("[data-net]");
      const verdict = this.q("[data-net-verdict]");
      const set = (sel, text) => { this.q(sel).textContent = text; };
      box.dataset.level = "0";
      verdict.dataset.level = "0";
      verdict.textContent = T.checking;
      set("[data-net-rtt]", "…");
      set("[data-net-down]", "…");
      set("[data-net-up]", "…");
      set("[data-net-advice]", T.netMeasuring);
      const csrf = (document.querySelector("meta[name=csrf-token]") || {}).content || "";
      let rtt = Infinity;
      let down = 0;
      let up = 0;
      let failed = false;
      try {
        const times = [];
        for (let i = 0; i < 6; i++) times.push(await timed(`/netcheck/ping?n=${Date.now()}-${i}`, {}, 4000));
        rtt = Math.min(...times.slice(1)) * 1000;
        set("[data-net-rtt]", `${Math.round(rtt)} ms`);
        // Download: a small sample first, a larger one only when the link is fast (spares weak links).
        let bytes = 256 * 1024;
        let secs = await timed(`/netcheck/download?bytes=${bytes}&n=${Date.now()}`, {}, 10000);
        if (secs < 0.4) {
          bytes = 1024 * 1024;
          secs = await timed(`/netcheck/download?bytes=${bytes}&n=${Date.now()}`, {}, 10000);
        }
        down = (bytes * 8) / Math.max(secs - rtt / 2000, 0.001) / 1e6;
        set("[data-net-down]", `${taphuanFormat.formatNumber(down, 1)} Mbit/s`);
        const upload = async (size) => {
          const body = new Uint8Array(size);
          crypto.getRandomValues(body.subarray(0, Math.min(size, 65536)));
          return timed("/netcheck/upload", {
            method: "POST", body, headers: { "Content-Type": "application/octet-stream", "X-CSRF-Token": csrf },
          }, 12000);
        };
        let upBytes = Math.min(192 * 1024, this.opt.uploadMax || 192 * 1024);
        secs = await upload(upBytes);
        if (secs < 0.4 && (this.opt.uploadMax || 0) >= 768 * 1024) {
          upBytes = 768 * 1024;
          secs = await upload(upBytes);
        }
        up = (upBytes * 8) / Math.max(secs - rtt / 2000, 0.001) / 1e6;
        set("[data-net-up]", `${taphuanFormat.formatNumber(up, 1)} Mbit/s`);
      } catch (err) {
        failed = true;
        if (!isFinite(rtt)) set("[data-net-rtt]", "—");
        if (!down) set("[data-net-down]", "—");
        if (!up) set("[data-net-up]", "—");
      }
      const score = (v, good, fair) => (v >= good ? 3 : v >= fair ? 2 : 1);
      const rttLevel = rtt < 150 ? 3 : rtt < 400 ? 2 : 1;
      const level = failed ? 0 : Math.min(rttLevel, score(down, 3, 1), score(up, 1.5, 0.6));
      this.net = { level, rtt, down, up };
      box.dataset.level = String(level);
      verdict.dataset.level = String(level);
      verdict.textContent = T[`net_${LEVELS[level]}`];
      set("[data-net-advice]", T[`netAdvice_${LEVELS[level]}`]);
      // a weak link points at the audio-only choice; ticking it stays the user's decision
      const offer = document.querySelector("[data-join-audio-only]");
      if (offer && offer.closest("label")) offer.closest("label").classList.toggle("is-suggested", level === 1);
      this.el.dispatchEvent(new CustomEvent("devicecheck:network", { detail: this.net }));
      return this.net;
    }

    async takeStream() {
      // The previewed stream is handed to the room; the meter stops (the room shows its own indicator).
      try { await this.opening; } catch (e) { /* no devices: join to watch and listen */ }
      this.stopMeter();
      const s = this.stream;
      this.q("[data-check-video]").srcObject = null;
      return s;
    }
  }

  global.DeviceCheck = DeviceCheck;
})(window);
