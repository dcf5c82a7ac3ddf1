// live-quality.js: this participant's own connection quality (getStats of its up and down peer connections:
// round-trip time, packet loss, available bitrate) as a 3-level bar, and the audio-only proposal when this
// classroom's own downlink cannot carry video: the server, from this page's own bandwidth estimate and loss,
// has paused a large video slot ("weak-network") for WEAK_SAMPLES samples in a row. Not from the loss the page
// sees (a presenter's lossy uplink shows there too) nor from a low video bitrate (a presenter may send little).
(function () {
  "use strict";
  const L = window.TaphuanLive;
  const { client, T, $, root, cfg } = L;
  const SAMPLE_MS = 2000;
  const WEAK_SAMPLES = 3;       // 3 samples in a row (about 6 s) before proposing audio-only
  const LARGE_SLOTS = ["presenter-video", "screen", "floor-video"];

  const q = { prev: null, level: 0, weakStreak: 0, dismissedUntil: 0, timer: null, joinedAt: 0, last: null };
  L.quality = q;

  function videoPausedByNetwork() {
    if (L.audioOnly) return false;
    return LARGE_SLOTS.some((s) => client.slotState[s] && client.slotState[s].state === "weak-network");
  }

  async function read() {
    const out = { lost: 0, recv: 0, videoBytes: 0, rtt: null, avail: null, upLoss: 0 };
    if (client.down && client.down.connectionState !== "closed") {
      const stats = await client.down.getStats();
      for (const r of stats.values()) {
        if (r.type === "inbound-rtp") {
          out.lost += Math.max(0, r.packetsLost || 0);
          out.recv += r.packetsReceived || 0;
          if (r.kind === "video") out.videoBytes += r.bytesReceived || 0;
        } else if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded" && r.currentRoundTripTime !== undefined) {
          out.rtt = r.currentRoundTripTime;
        }
      }
    }
    if (client.up && client.up.connectionState !== "closed") {
      const stats = await client.up.getStats();
      for (const r of stats.values()) {
        if (r.type === "remote-inbound-rtp" && r.fractionLost !== undefined) out.upLoss = Math.max(out.upLoss, r.fractionLost);
        else if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") {
          if (r.availableOutgoingBitrate !== undefined) out.avail = r.availableOutgoingBitrate;
          if (out.rtt === null && r.currentRoundTripTime !== undefined) out.rtt = r.currentRoundTripTime;
        }
      }
    }
    out.at = performance.now();
    return out;
  }

  async function sample() {
    if (!L.joined || client.reconnecting) return;
    let cur;
    try { cur = await read(); } catch (e) { return; }
    const prev = q.prev;
    q.prev = cur;
    if (!prev) return;
    const dt = Math.max(0.001, (cur.at - prev.at) / 1000);
    const dLost = Math.max(0, cur.lost - prev.lost);
    const dRecv = Math.max(0, cur.recv - prev.recv);
    const loss = dLost + dRecv > 0 ? dLost / (dLost + dRecv) : 0;
    feed({
      loss: Math.max(loss, cur.upLoss || 0),
      rtt: cur.rtt,
      avail: cur.avail,
      videoKbps: Math.max(0, cur.videoBytes - prev.videoBytes) * 8 / dt / 1000,
      pausedByNetwork: videoPausedByNetwork(),
    });
  }

  function feed(s) {
    // One sample: {loss 0..1, rtt seconds|null, avail bit/s|null, videoKbps, pausedByNetwork}.
    q.last = s;
    const rtt = s.rtt === null || s.rtt === undefined ? 0 : s.rtt;
    let level = s.loss < 0.02 && rtt < 0.25 ? 3 : s.loss < 0.08 && rtt < 0.6 ? 2 : 1;
    if (s.avail && s.avail < 100000) level = Math.min(level, 2);
    q.level = level;
    const box = $("[data-quality]");
    box.dataset.level = String(level);
    $("[data-quality-label]", box).textContent = level === 3 ? T.net_good : level === 2 ? T.net_fair : T.net_weak;
    const parts = [`${T.qualityTitle}: ${level === 3 ? T.net_good : level === 2 ? T.net_fair : T.net_weak}`];
    if (s.rtt !== null && s.rtt !== undefined) parts.push(`RTT ${Math.round(s.rtt * 1000)} ms`);
    parts.push(`${T.packetLoss} ${taphuanFormat.formatNumber(s.loss * 100, 1)}%`);
    if (s.avail) parts.push(`${T.uplink} ${taphuanFormat.formatNumber(s.avail / 1e6, 1)} Mbit/s`);
    box.title = parts.join(" · ");

    q.weakStreak = s.pausedByNetwork ? q.weakStreak + 1 : 0;
    if (!cfg.studio && !L.audioOnly && q.weakStreak >= WEAK_SAMPLES && Date.now() > q.dismissedUntil) {
      $("[data-weak-banner]").hidden = false;
    }
  }
  q.feed = feed;

  root.addEventListener("live:weak-dismissed", () => {
    q.dismissedUntil = Date.now() + 5 * 60 * 1000;  // ask again after five minutes at most
    q.weakStreak = 0;
  });
  root.addEventListener("live:joined", () => {
    q.joinedAt = performance.now();
    clearInterval(q.timer);
    q.timer = setInterval(sample, SAMPLE_MS);
  });
  root.addEventListener("live:ended", () => clearInterval(q.timer));
})();
