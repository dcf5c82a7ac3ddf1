// protocol.js: the browser side of docs/protocol.md (Taphuan signalling, version 1). No UI code.
//
// const client = new TaphuanClient({meetingId: 12});
// client.addEventListener("slot", (e) => ...);          // e.detail is the server message
// await client.connect();                                 // opens /ws, joins, answers the down offer
// await client.publish(stream, {screenSlot: true, cameraLayers: 3});  // camera + microphone (+ a screen slot) up
// await client.setScreen(track) / setScreen(null)          // share the screen or stop
// client.slotStream("presenter-video")                    // MediaStream of a down slot
//
// Events (CustomEvent, detail = message): joined, lobby, offer, slot, floor, presenter, hand, grid,
// participant-joined, participant-left, participant-state, participant-audio-only, mute-request, peer-failed,
// closed, error, locked, lobby-waiting, chat, chat-history, chat-deleted, poll, poll-results, recording,
// meeting-ending, meeting-extended, meeting-ended (the meeting ended for everyone: `closed` follows, nothing
// reconnects), broadcast-question and broadcast-questions (moderators: the live broadcast's viewers' questions),
// plus the connection states "reconnecting" and "reconnected" (detail.media: only the media connections,
// the socket stayed), "pc-state" ({pc, state}) and "track" ({slot, track, stream}).
//
// Recovery (docs/protocol.md "Recovery"): a media connection that is "disconnected" is left alone to come
// back by itself when the link returns; it is renewed (`restart`) on `peer-failed`, when it is "failed", or
// when the socket answers a ping again and it still has not come back ~2 s later. A lost socket is resumed.
//
// The recorder (a participant of role "recorder", docs/protocol.md "Recording") is not a person: it is
// kept out of client.participants; client.recording says whether the room is being recorded (from the
// recorder's presence and from "recording" events), client.recorders holds its participant ids.
(function (global) {
  "use strict";

  const VERSION = 1;
  // Close reasons after which reconnecting is pointless (refused, or it would replace someone): all but
  // server-shutdown, too-slow and origin-lost (docs/protocol.md, `closed` reasons).
  const FINAL = ["replaced", "logout", "password-changed", "password-reset", "disabled", "link-revoked",
    "removed", "refused", "left", "too-many-connections", "flooding", "meeting-ended"];
  const PROBE_AFTER_MS = 2000;   // a media connection "disconnected" that long: is the network back? (ping)
  const GRACE_MS = 2000;         // the socket answers again: time left for the connection to come back itself

  class ProtocolError extends Error {
    constructor(code, message, url) {
      super(message);
      this.code = code;
      this.url = url || null;  // `moved`: the socket URL of the node holding the room
    }
  }

  // Simulcast: a video track goes up in 2 or 3 spatial layers (rids q/h/f, lowest first: the server reads
  // them in this order; fewer for a small capture, one plain stream below 480x270) and the server forwards each subscriber one of them; with VP8 each layer also
  // carries 3 temporal layers (L1T3). H.264 rooms get the spatial layers only.
  const LAYERS = {
    2: [["q", 2], ["f", 1]],
    3: [["q", 4], ["h", 2], ["f", 1]],
  };

  function layerEncodings(layers, videoCodec) {
    const temporal = !videoCodec || videoCodec.toLowerCase() === "video/vp8";
    if (!LAYERS[layers]) return temporal ? [{ scalabilityMode: "L1T3" }] : [];
    return LAYERS[layers].map(([rid, scale]) =>
      Object.assign({ rid, scaleResolutionDownBy: scale }, temporal ? { scalabilityMode: "L1T3" } : {}));
  }

  // Chromium encodes at most 3 layers of a capture of 960x540 or more, 2 from 480x270, 1 below (libwebrtc's
  // simulcast table): asked for more, it leaves the top ones off, so a 640x360 camera asked for 3 would send
  // nothing above 320x180. A camera is asked for what its capture allows; the screen's size is not known until
  // it is shared (a replaceTrack on the reserved transceiver), so it is asked for what the caller says.
  function layersFor(track, wanted) {
    const s = track && track.getSettings ? track.getSettings() : {};
    if (!s.width || !s.height) return wanted;
    const pixels = s.width * s.height;
    return Math.min(wanted || 1, pixels >= 960 * 540 ? 3 : pixels >= 480 * 270 ? 2 : 1);
  }

  function addVideo(pc, trackOrKind, init, layers, videoCodec) {
    // A sendonly video transceiver with `layers` simulcast encodings (1: one stream, with temporal layers for
    // VP8). A browser that refuses them tries them without temporal layers, then sends one plain stream (the
    // server takes either).
    const full = layerEncodings(layersFor(trackOrKind, layers), videoCodec);
    if (full.length) {
      const plain = full.length > 1 ? full.map((e) => ({ rid: e.rid, scaleResolutionDownBy: e.scaleResolutionDownBy }))
        : null;
      for (const sendEncodings of plain ? [full, plain] : [full]) {
        try {
          return pc.addTransceiver(trackOrKind, Object.assign({}, init, { sendEncodings }));
        } catch (e) { /* refused: fewer features */ }
      }
    }
    return pc.addTransceiver(trackOrKind, init);
  }

  function waitIceGathering(pc, timeoutMs) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        pc.removeEventListener("icegatheringstatechange", check);
        clearTimeout(timer);
        resolve();
      };
      const check = () => { if (pc.iceGatheringState === "complete") done(); };
      const timer = setTimeout(done, timeoutMs);
      pc.addEventListener("icegatheringstatechange", check);
    });
  }

  class TaphuanClient extends EventTarget {
    constructor(options) {
      super();
      this.meetingId = options.meetingId;
      this.name = options.name || null;
      // With several nodes the page's `node` (docs/deploy.md) goes with its socket, for the router in front.
      const node = new URLSearchParams(location.search).get("node");
      this.url = options.url || ((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws"
        + (node ? "?node=" + encodeURIComponent(node) : ""));
      this.homeUrl = this.url;  // where a socket goes again when the node it was sent to (`moved`) is gone
      this.gatherTimeoutMs = options.gatherTimeoutMs || 1500;
      this.ws = null;
      this.nextId = 1;
      this.pending = new Map();
      this.participantId = null;
      this.resumeToken = null;
      this.role = null;
      this.room = null;
      this.iceServers = [];
      this.participants = new Map();
      this.presenterId = null;
      this.floorId = null;
      this.slots = {};          // slot -> mid
      this.slotStreams = {};    // slot -> MediaStream
      this.slotState = {};      // slot -> last "slot" message
      this.hands = new Set();
      this.recorders = new Set();  // participant ids of role "recorder"
      this.recording = false;      // the room is being recorded
      this.recordingId = null;
      this.up = null;
      this.down = null;
      this.local = null;        // {stream, screen} last published
      this.closedReason = null;
      this.closedMessage = "";
      this.reconnecting = false;
      this.retries = 0;
      this.renewing = false;    // media renewal (`restart`) under way
      this.mediaDown = false;   // "reconnecting" was emitted for the media connections only
      this.probe = null;        // timer of the disconnected-connection check
    }

    emit(type, detail) {
      this.dispatchEvent(new CustomEvent(type, { detail }));
    }

    // ------------------------------------------------------------------ connection

    async connect() {
      await this.openSocket();
      let reply = await this.joinHere(() => this.request("join", { version: VERSION, meeting_id: this.meetingId, name: this.name }));
      if (reply.type === "lobby") reply = await this.waitInLobby(reply);
      this.onJoined(reply);
      return reply;
    }

    waitInLobby(reply) {
      // The join was answered with "lobby": wait for "joined" (same id) or "closed" (refused).
      this.emit("lobby", reply);
      return new Promise((resolve, reject) => {
        this.lobbyWait = { id: reply.id, resolve, reject };
      });
    }

    async joinHere(send) {
      // A `join` refused with `moved` (several nodes: the room is on another one): open a socket there and send
      // it again (a few times at most: the placement settles at once).
      for (let hops = 0; ; hops++) {
        try {
          return await send();
        } catch (err) {
          if (!(err instanceof ProtocolError) || err.code !== "moved" || !err.url || hops >= 3) throw err;
          const old = this.ws;
          this.url = err.url;
          await this.openSocket();
          if (old) old.close();
        }
      }
    }

    openSocket() {
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(this.url);
        this.ws = ws;
        ws.onopen = () => resolve();
        ws.onerror = () => reject(new ProtocolError("network", "WebSocket error"));
        ws.onmessage = (ev) => this.onMessage(ev.data);
        ws.onclose = (ev) => this.onSocketClose(ws, ev);
      });
    }

    onJoined(reply) {
      this.participantId = reply.participant_id;
      this.resumeToken = reply.resume_token;
      this.role = reply.role;
      this.room = reply.room;
      this.iceServers = reply.ice_servers || [];
      this.presenterId = reply.room.presenter_id;
      this.floorId = reply.room.floor_id;
      this.participants.clear();
      this.hands.clear();
      this.recorders.clear();
      for (const p of reply.room.participants) {
        if (p.role === "recorder") { this.recorders.add(p.participant_id); continue; }
        this.participants.set(p.participant_id, p);
        if (p.hand_raised) this.hands.add(p.participant_id);
      }
      this.recording = this.recorders.size > 0;
      if (!this.recording) this.recordingId = null;
      this.emit("joined", reply);
    }

    onSocketClose(ws, ev) {
      if (ws !== this.ws) return;
      for (const [, p] of this.pending) p.reject(new ProtocolError("network", "connection closed"));
      this.pending.clear();
      if (this.closedReason && FINAL.includes(this.closedReason)) return;
      if (!this.participantId) return;
      this.scheduleReconnect();
    }

    scheduleReconnect() {
      if (this.reconnecting) return;
      this.reconnecting = true;
      this.emit("reconnecting", { attempt: this.retries });
      const delay = Math.min(8000, 500 * Math.pow(2, this.retries++));
      setTimeout(() => this.reconnect(), delay);
    }

    async reconnect() {
      try {
        await this.openSocket();
        const reply = await this.enterAgain(true);
        this.reconnecting = false;
        this.retries = 0;
        this.emit("reconnected", reply);
      } catch (err) {
        this.reconnecting = false;
        // The node it was sent to is gone: back to the page's own address (the room moves to a living node).
        if (err instanceof ProtocolError && err.code === "network") this.url = this.homeUrl;
        if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.close();
        else this.scheduleReconnect();
      }
    }

    async enterAgain(resume) {
      // Resume (else join afresh) on the current socket, with new media connections: the server's media
      // peers died with the old socket, so the old down connection goes and the down offer that follows
      // `joined` builds a fresh one; then publish again.
      this.closeDown();
      this.clearProbe();
      let reply = null;
      if (resume) {
        try {
          reply = await this.joinHere(() => this.request("join", {
            version: VERSION, meeting_id: this.meetingId, name: this.name,
            resume: { participant_id: this.participantId, token: this.resumeToken },
          }));
        } catch (err) {
          if (!(err instanceof ProtocolError) || err.code !== "token") throw err;
        }
      }
      if (!reply) reply = await this.joinHere(() => this.request("join", { version: VERSION, meeting_id: this.meetingId, name: this.name }));
      // A fresh join may be answered with "lobby" (e.g. a locked room on a node that never saw this classroom).
      if (reply.type === "lobby") reply = await this.waitInLobby(reply);
      this.onJoined(reply);
      this.renewing = false;
      this.mediaDown = false;
      await this.republish();
      return reply;
    }

    async republish() {
      if (this.local) await this.publish(this.local.stream, { screenSlot: this.local.screenSlot, videoCodec: this.local.videoCodec });
    }

    // ------------------------------------------------------------------ media recovery

    onPcState(which, pc) {
      if (pc !== this[which]) return;  // an old connection closing
      const state = pc.connectionState;
      if (state === "failed") {
        this.renewMedia();
      } else if (state === "disconnected") {
        this.mediaLost();
        if (!this.probe && !this.renewing) this.probe = setTimeout(() => this.probeNetwork(0), PROBE_AFTER_MS);
      } else if (state === "connected") {
        if (this.mediaHealthy()) this.clearProbe();
        this.mediaBack();
      }
    }

    mediaHealthy() {
      // No connection that exists is disconnected, failed or closed.
      return [this.up, this.down].every((pc) => !pc || ["new", "connecting", "connected"].includes(pc.connectionState));
    }

    mediaBack() {
      // Every connection that exists carries media again: the end of "reconnecting" for the media.
      if (!this.mediaDown || this.renewing || this.reconnecting) return;
      if (![this.up, this.down].every((pc) => !pc || pc.connectionState === "connected")) return;
      this.mediaDown = false;
      this.emit("reconnected", { media: true });
    }

    mediaLost() {
      if (this.mediaDown || this.reconnecting) return;
      this.mediaDown = true;
      this.emit("reconnecting", { media: true });
    }

    clearProbe() {
      if (this.probe) clearTimeout(this.probe);
      this.probe = null;
    }

    async probeNetwork(attempt) {
      // A media connection is "disconnected": once the socket answers a ping (the network is back), give it
      // GRACE_MS to come back by itself, then renew it.
      this.probe = null;
      if (this.renewing || this.reconnecting || this.mediaHealthy()) return;
      try {
        await this.within(this.request("ping", {}), 4000);
      } catch (err) {
        if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;  // the socket path takes over
        this.probe = setTimeout(() => this.probeNetwork(attempt + 1), Math.min(8000, 1000 * Math.pow(2, attempt)));
        return;
      }
      this.probe = setTimeout(() => {
        this.probe = null;
        if (!this.mediaHealthy()) this.renewMedia();
      }, GRACE_MS);
    }

    within(promise, ms) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new ProtocolError("timeout", "no reply")), ms);
        promise.then((v) => { clearTimeout(timer); resolve(v); }, (e) => { clearTimeout(timer); reject(e); });
      });
    }

    async renewMedia() {
      // New media connections without leaving the room (`restart`). While the link is down the request waits
      // in the socket (sending it again would only queue a second renewal); a refused one is tried again with
      // back-off; a socket lost meanwhile is resumed instead (which renews the media too).
      if (this.renewing || this.reconnecting || !this.participantId) return;
      this.renewing = true;
      this.clearProbe();
      this.mediaLost();
      for (let attempt = 0; this.renewing; attempt++) {
        if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.reconnecting) break;
        try {
          this.closeDown();
          if (this.up) this.up.close();
          this.up = null;
          await this.request("restart", {});  // the new down offer is answered as it comes (onOffer)
          await this.republish();
          this.renewing = false;
          this.mediaBack();
          return;
        } catch (err) {
          if (!(err instanceof ProtocolError) || err.code === "network") break;  // the socket path takes over
          if (err.code === "not-joined") {
            // The participant is gone (its resume window ended): join afresh on this socket.
            this.renewing = false;
            try { await this.enterAgain(false); this.emit("reconnected", { media: true }); } catch (e) { /* socket path */ }
            return;
          }
          await new Promise((r) => setTimeout(r, Math.min(8000, 1000 * Math.pow(2, attempt))));
        }
      }
      this.renewing = false;
    }

    // ------------------------------------------------------------------ messages

    send(message) {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) throw new ProtocolError("network", "not connected");
      this.ws.send(JSON.stringify(message));
    }

    request(type, fields) {
      const id = this.nextId++;
      const message = Object.assign({ type, id }, fields || {});
      return new Promise((resolve, reject) => {
        this.pending.set(id, { resolve, reject });
        try {
          this.send(message);
        } catch (err) {
          this.pending.delete(id);
          reject(err);
        }
      });
    }

    onMessage(text) {
      let msg;
      try { msg = JSON.parse(text); } catch (e) { return; }
      if (this.lobbyWait && (msg.type === "joined" || msg.type === "closed" || msg.type === "error")
          && (msg.type === "closed" || msg.id === this.lobbyWait.id)) {
        const w = this.lobbyWait;
        this.lobbyWait = null;
        if (msg.type === "joined") w.resolve(msg);
        else w.reject(new ProtocolError(msg.reason || (msg.error && msg.error.code) || "closed",
          msg.message || (msg.error && msg.error.message) || ""));
        if (msg.type !== "closed") return;
      }
      if (msg.id !== undefined && msg.id !== null && this.pending.has(msg.id)) {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.type === "error") p.reject(new ProtocolError(msg.error.code, msg.error.message, msg.error.url));
        else p.resolve(msg);
        return;
      }
      switch (msg.type) {
        case "offer": this.onOffer(msg); break;
        case "participant-joined":
          if (msg.role === "recorder") {
            this.recorders.add(msg.participant_id);
            this.recording = true;
          } else {
            // Also sent after `joined` for everyone it listed: keep what `joined` said of them.
            this.participants.set(msg.participant_id, Object.assign({ hand_raised: false, state: "connected" },
              this.participants.get(msg.participant_id), msg));
          }
          break;
        case "participant-left":
          if (msg.participant_id === this.participantId && msg.participant_id) {
            // Its media did not come back within the resume window: the server ended this participant.
            this.renewing = false;
            this.enterAgain(false).then(() => this.emit("reconnected", { media: true }), () => {});
          }
          this.participants.delete(msg.participant_id);
          this.hands.delete(msg.participant_id);
          if (this.recorders.delete(msg.participant_id) && this.recorders.size === 0) this.recording = false;
          break;
        case "recording":
          if (msg.state === "recording") { this.recording = true; this.recordingId = msg.recording_id; }
          else if (msg.state === "stopped") { this.recording = false; this.recordingId = null; }
          break;
        case "participant-state": {
          const p = this.participants.get(msg.participant_id);
          if (p) p.state = msg.state;
          break;
        }
        case "participant-audio-only": {
          const p = this.participants.get(msg.participant_id);
          if (p) p.audio_only = msg.enabled;
          break;
        }
        case "presenter": this.presenterId = msg.participant_id; break;
        case "locked": if (this.room) this.room.locked = msg.locked; break;
        case "floor": this.floorId = msg.participant_id; break;
        case "hand":
          if (msg.raised) this.hands.add(msg.participant_id); else this.hands.delete(msg.participant_id);
          break;
        case "slot": this.slotState[msg.slot] = msg; break;
        case "mute-request": this.applyMute(msg); break;
        case "peer-failed": this.renewMedia(); break;
        case "closed": this.closedReason = msg.reason; this.closedMessage = msg.message; break;
        case "meeting-ended": this.closedReason = "meeting-ended"; this.endedInfo = msg; break;
        default: break;
      }
      this.emit(msg.type, msg);
    }

    applyMute(msg) {
      if (!this.local) return;
      if (msg.by === this.participantId) return;  // our own screen on/off
      const tracks = msg.source === "mic" ? this.local.stream.getAudioTracks()
        : msg.source === "camera" ? this.local.stream.getVideoTracks()
          : (this.local.screen ? [this.local.screen] : []);
      for (const t of tracks) t.enabled = !msg.muted;
    }

    // ------------------------------------------------------------------ down: receive

    closeDown() {
      if (this.down) this.down.close();
      this.down = null;
    }

    async onOffer(msg) {
      try {
        // Every offer comes from a new server connection (join, resume, restart): a new one here too.
        this.slots = msg.slots;
        this.closeDown();
        const pc = this.down = this.newPeer("down");
        this.slotStreams = {};
        pc.ontrack = (ev) => {
          const mid = ev.transceiver.mid;
          const slot = Object.keys(this.slots).find((s) => this.slots[s] === mid);
          if (!slot) return;
          const stream = new MediaStream([ev.track]);
          this.slotStreams[slot] = stream;
          this.emit("track", { slot, track: ev.track, stream });
        };
        await pc.setRemoteDescription({ type: "offer", sdp: msg.sdp });
        await pc.setLocalDescription(await pc.createAnswer());
        await waitIceGathering(pc, this.gatherTimeoutMs);
        if (pc !== this.down) return;  // a newer offer came meanwhile
        await this.request("answer", { sdp: pc.localDescription.sdp });
        this.sdpDelivered(pc);
      } catch (err) {
        this.emit("error", { error: { code: err.code || "negotiation", message: String(err.message || err) } });
      }
    }

    slotStream(slot) {
      return this.slotStreams[slot] || null;
    }

    // ------------------------------------------------------------------ up: publish

    newPeer(which) {
      const pc = new RTCPeerConnection({ iceServers: this.iceServers, bundlePolicy: "max-bundle" });
      // Candidates found before the server has our SDP wait in a queue (most are in the SDP anyway);
      // later ones are trickled.
      pc._sdpSent = false;
      pc._queued = [];
      pc._trickle = (c) => {
        try {
          this.send({ type: "candidate", pc: which, candidate: { candidate: c.candidate, sdpMid: c.sdpMid, sdpMLineIndex: c.sdpMLineIndex } });
        } catch (e) { /* socket gone: a reconnect renegotiates */ }
      };
      pc.onicecandidate = (ev) => {
        if (!ev.candidate) return;
        if (pc._sdpSent) pc._trickle(ev.candidate); else pc._queued.push(ev.candidate);
      };
      pc.onconnectionstatechange = () => {
        this.emit("pc-state", { pc: which, state: pc.connectionState });
        this.onPcState(which, pc);
      };
      return pc;
    }

    sdpDelivered(pc) {
      // The server has our SDP: trickle what was queued and is not in it.
      pc._sdpSent = true;
      const sdp = pc.localDescription ? pc.localDescription.sdp : "";
      for (const c of pc._queued) if (!sdp.includes(c.candidate)) pc._trickle(c);
      pc._queued = [];
    }

    async publish(stream, options) {
      // Publish camera and microphone; options.screenSlot reserves a third, silent transceiver for
      // screen sharing, so that sharing later is a replaceTrack (no renegotiation). The camera goes up in
      // options.cameraLayers simulcast layers (1: none, 2 or 3), the screen in options.screenLayers; a
      // publish again (after a reconnect) keeps the previous ones unless told.
      options = Object.assign({}, this.local && { cameraLayers: this.local.cameraLayers,
        screenLayers: this.local.screenLayers }, options);
      if (this.up) this.up.close();
      const pc = this.newPeer("up");
      this.up = pc;
      this.local = { stream, screenSlot: !!options.screenSlot, videoCodec: options.videoCodec,
        cameraLayers: options.cameraLayers, screenLayers: options.screenLayers,
        screen: this.local ? this.local.screen : null };
      const sources = [];
      for (const track of stream.getTracks()) {
        const init = { direction: "sendonly", streams: [stream] };
        const tr = track.kind === "video"
          ? addVideo(pc, track, init, options.cameraLayers, options.videoCodec)
          : pc.addTransceiver(track, init);
        sources.push([tr, track.kind === "audio" ? "mic" : "camera"]);
      }
      let screenTr = null;
      if (options.screenSlot) {
        screenTr = addVideo(pc, this.local.screen || "video", { direction: "sendonly" }, options.screenLayers,
          options.videoCodec);
        sources.push([screenTr, "screen"]);
      }
      this.screenSender = screenTr ? screenTr.sender : null;
      if (options.videoCodec) this.preferCodec(pc, options.videoCodec);
      await pc.setLocalDescription(await pc.createOffer());
      await waitIceGathering(pc, this.gatherTimeoutMs);
      const map = {};
      for (const [tr, source] of sources) map[tr.mid] = source;
      const reply = await this.request("publish", { sdp: pc.localDescription.sdp, sources: map });
      await pc.setRemoteDescription({ type: "answer", sdp: reply.sdp });
      this.sdpDelivered(pc);
      if (options.screenSlot) await this.mute(this.participantId, "screen", !this.local.screen);
      return pc;
    }

    async setScreen(track) {
      // Start (track) or stop (null) sharing the screen through the reserved transceiver.
      if (!this.screenSender) throw new ProtocolError("state", "publish with screenSlot first");
      this.local.screen = track;
      await this.screenSender.replaceTrack(track);
      await this.mute(this.participantId, "screen", !track);
    }

    preferCodec(pc, mime) {
      if (!RTCRtpSender.getCapabilities) return;
      const caps = RTCRtpSender.getCapabilities("video");
      if (!caps) return;
      const wanted = caps.codecs.filter((c) => c.mimeType.toLowerCase() === mime.toLowerCase());
      const rest = caps.codecs.filter((c) => c.mimeType.toLowerCase() !== mime.toLowerCase());
      for (const tr of pc.getTransceivers()) {
        if (tr.sender.track && tr.sender.track.kind === "video" && tr.setCodecPreferences) {
          tr.setCodecPreferences(wanted.concat(rest));
        }
      }
    }

    // ------------------------------------------------------------------ room actions

    raiseHand(raised) { return this.request("raise-hand", { raised: !!raised }); }
    giveFloor(participantId) { return this.request("give-floor", { participant_id: participantId }); }
    setPresenter(participantId) { return this.request("set-presenter", { participant_id: participantId }); }
    mute(participantId, source, muted) {
      return this.request("mute", { participant_id: participantId, source, muted: muted !== false });
    }
    gridPage(page) { return this.request("grid-page", { page }); }
    lock(locked) { return this.request("lock", { locked: !!locked }); }
    stats() { return this.request("stats", {}); }
    remove(participantId) { return this.request("remove", { participant_id: participantId }); }
    muteAll(source) { return this.request("mute-all", { source: source || "mic" }); }
    audioOnly(enabled) { return this.request("audio-only", { enabled: !!enabled }); }
    admit(lobbyId) { return this.request("admit", { lobby_id: lobbyId }); }
    refuse(lobbyId) { return this.request("refuse", { lobby_id: lobbyId }); }
    chat(text, to) { return this.request("chat", to ? { text, to } : { text }); }
    deleteChat(messageId) { return this.request("chat-delete", { message_id: messageId }); }
    createPoll(question, choices) { return this.request("poll-create", { question, choices }); }
    answerPoll(pollId, choice) { return this.request("poll-answer", { poll_id: pollId, choice }); }
    closePoll(pollId) { return this.request("poll-close", { poll_id: pollId }); }
    // Recording (docs/protocol.md): everyone gets "recording" events {state: recording|stopped|refused}.
    recordStart() { return this.request("record-start", {}); }
    recordStop() { return this.request("record-stop", {}); }
    recordMarker(title) { return this.request("record-marker", { title: String(title) }); }
    // Ending (docs/protocol.md "Ending a meeting"): moderators end the meeting for everyone or move its end later.
    endMeeting() { return this.request("end-meeting", {}); }
    extendMeeting(minutes) { return this.request("extend-meeting", { minutes: Number(minutes) }); }
    // Live broadcast questions (docs/protocol.md): moderators get "broadcast-question" and "broadcast-questions".
    approveQuestion(questionId) { return this.request("question-approve", { question_id: questionId }); }
    answerQuestion(questionId, text) { return this.request("question-answer", { question_id: questionId, text: String(text) }); }
    dismissQuestion(questionId) { return this.request("question-dismiss", { question_id: questionId }); }
    ping() { return this.request("ping", {}); }

    async leave() {
      this.closedReason = "left";
      try { await this.request("leave", {}); } catch (e) { /* already gone */ }
      this.close();
    }

    close() {
      if (!this.closedReason) this.closedReason = "left";
      this.clearProbe();
      this.renewing = false;
      if (this.ws) this.ws.close(1000);
      if (this.up) this.up.close();
      this.closeDown();
      this.up = null;
    }
  }

  global.TaphuanClient = TaphuanClient;
  global.TaphuanProtocolError = ProtocolError;
})(window);
