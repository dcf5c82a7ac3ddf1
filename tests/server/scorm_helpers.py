"""scorm_helpers: minimal SCORM 1.2 and 2004 packages (single and multi-SCO) built in memory, whose pages find and
call the runtime the way authoring tools' output does (a findAPI loop up the frames, then LMSInitialize /
LMSSetValue / LMSCommit / LMSFinish, or Initialize / SetValue / Commit / Terminate); and malicious ZIPs."""

from __future__ import annotations

import io
import stat
import zipfile
from collections.abc import Mapping

MANIFEST_12 = """<?xml version="1.0" encoding="UTF-8"?>
<manifest identifier="com.example.toan6" version="1.0"
  xmlns="http://www.imsproject.org/xsd/imscp_rootv1p1p2"
  xmlns:adlcp="http://www.adlnet.org/xsd/adlcp_rootv1p2"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <metadata><schema>ADL SCORM</schema><schemaversion>1.2</schemaversion></metadata>
  <organizations default="ORG">
    <organization identifier="ORG">
      <title>Bài giảng Toán 6</title>
      {items}
    </organization>
  </organizations>
  <resources>{resources}</resources>
</manifest>
"""

MANIFEST_2004 = """<?xml version="1.0" encoding="UTF-8"?>
<manifest identifier="com.example.ngu-van" version="1"
  xmlns="http://www.imsglobal.org/xsd/imscp_v1p1"
  xmlns:adlcp="http://www.adlnet.org/xsd/adlcp_v1p3"
  xmlns:imsss="http://www.imsglobal.org/xsd/imsss">
  <metadata><schema>ADL SCORM</schema><schemaversion>2004 4th Edition</schemaversion></metadata>
  <organizations default="ORG">
    <organization identifier="ORG">
      <title>Bài giảng Ngữ văn</title>
      {items}
    </organization>
  </organizations>
  <resources>{resources}</resources>
</manifest>
"""

# Authoring tools' usual lookup: walk up the parents (at most 7), then the opener's.
FIND_API = """
function findAPI(win, name) {
  var tries = 0;
  while (!win[name] && win.parent && win.parent !== win && tries < 7) { tries++; win = win.parent; }
  return win[name] || null;
}
function getAPI(name) {
  return findAPI(window, name) || (window.opener ? findAPI(window.opener, name) : null);
}
"""

SCO_12 = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<script>{find}
var api = getAPI("API");
var page = 1;
function show() {{
  document.getElementById("state").textContent = JSON.stringify({{
    found: !!api, entry: api.LMSGetValue("cmi.core.entry"), location: api.LMSGetValue("cmi.core.lesson_location"),
    suspend: api.LMSGetValue("cmi.suspend_data"), student: api.LMSGetValue("cmi.core.student_id"),
    total: api.LMSGetValue("cmi.core.total_time"), mastery: api.LMSGetValue("cmi.student_data.mastery_score"),
    status: api.LMSGetValue("cmi.core.lesson_status")
  }});
}}
window.addEventListener("load", function () {{
  api.LMSInitialize("");
  if (api.LMSGetValue("cmi.core.lesson_status") === "not attempted") {{
    api.LMSSetValue("cmi.core.lesson_status", "incomplete");
  }}
  show();
  document.getElementById("next").addEventListener("click", function () {{
    page += 1;
    api.LMSSetValue("cmi.core.lesson_location", "trang-" + page);
    api.LMSSetValue("cmi.suspend_data", "da-xem=" + page + ";ghi-chu=Số tự nhiên");
    api.LMSSetValue("cmi.core.exit", "suspend");
    api.LMSCommit("");
    document.getElementById("done").textContent = "page " + page;
  }});
  document.getElementById("finish").addEventListener("click", function () {{
    api.LMSSetValue("cmi.core.score.min", "0");
    api.LMSSetValue("cmi.core.score.max", "100");
    api.LMSSetValue("cmi.core.score.raw", "{score}");
    api.LMSSetValue("cmi.core.lesson_status", "completed");
    api.LMSSetValue("cmi.core.session_time", "{session_time}");
    api.LMSSetValue("cmi.core.exit", "");
    api.LMSCommit("");
    api.LMSFinish("");
    document.getElementById("done").textContent = "finished";
  }});
}});
</script></head><body><h1>{title}</h1><pre id="state"></pre><button id="next">Trang tiếp</button>
<button id="finish">Kết thúc</button><p id="done"></p></body></html>
"""

SCO_2004 = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<script>{find}
var api = getAPI("API_1484_11");
window.addEventListener("load", function () {{
  api.Initialize("");
  document.getElementById("state").textContent = JSON.stringify({{
    found: !!api, entry: api.GetValue("cmi.entry"), location: api.GetValue("cmi.location"),
    learner: api.GetValue("cmi.learner_id"), passing: api.GetValue("cmi.scaled_passing_score")
  }});
  document.getElementById("finish").addEventListener("click", function () {{
    api.SetValue("cmi.location", "cuoi-bai");
    api.SetValue("cmi.suspend_data", "{suspend}");
    api.SetValue("cmi.score.scaled", "{scaled}");
    api.SetValue("cmi.score.raw", "{raw}");
    api.SetValue("cmi.score.min", "0");
    api.SetValue("cmi.score.max", "10");
    api.SetValue("cmi.completion_status", "completed");
    api.SetValue("cmi.session_time", "{session_time}");
    api.SetValue("cmi.exit", "normal");
    api.Commit("");
    api.Terminate("");
    document.getElementById("done").textContent = "finished";
  }});
}});
</script></head><body><h1>{title}</h1><pre id="state"></pre><button id="finish">Kết thúc</button>
<p id="done"></p></body></html>
"""

# A package script that tries to reach the site: its cookie, its API (cross-origin and on its own origin), the
# top page's DOM. Each outcome is written into the page for the test to read.
PROBE = """<!doctype html><html><head><meta charset="utf-8"><title>Thăm dò</title>
<script>
var out = {};
function report() { document.getElementById("probe").textContent = JSON.stringify(out); }
out.cookie = document.cookie;
try { out.topCookie = window.top.document.cookie; } catch (e) { out.topCookie = "blocked"; }
try { out.topTitle = window.top.document.title; } catch (e) { out.topTitle = "blocked"; }
var site = new URLSearchParams(window.parent.location.search).get("site") || "";
out.site = site;
var pending = 2;
function done() { pending -= 1; if (!pending) { out.finished = true; report(); } }
fetch(site + "/api/v1/me", { credentials: "include" }).then(function (r) { return r.text(); })
  .then(function (t) { out.siteApi = t.slice(0, 200); done(); }, function () { out.siteApi = "blocked"; done(); });
fetch("/api/v1/me", { credentials: "include" }).then(function (r) { out.ownApi = r.status; done(); },
  function () { out.ownApi = "blocked"; done(); });
report();
</script></head><body><pre id="probe"></pre></body></html>
"""


def build_zip(files: Mapping[str, str | bytes]) -> bytes:
    """build_zip: a ZIP (deflated) of name → content."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def scorm12(scos: int = 1, mastery: int | None = 80, score: int = 85, session_time: str = "00:02:30.00") -> bytes:
    """scorm12: a SCORM 1.2 package of `scos` SCOs (sco-1/index.html, …), each with the mastery score."""
    items, resources, files = [], [], {}
    for n in range(1, scos + 1):
        ms = f"<adlcp:masteryscore>{mastery}</adlcp:masteryscore>" if mastery is not None else ""
        items.append(f'<item identifier="ITEM-{n}" identifierref="RES-{n}"><title>Bài {n}: Số tự nhiên</title>{ms}'
                     "</item>")
        resources.append(f'<resource identifier="RES-{n}" type="webcontent" adlcp:scormtype="sco" '
                         f'href="sco-{n}/index.html"><file href="sco-{n}/index.html"/></resource>')
        files[f"sco-{n}/index.html"] = SCO_12.format(title=f"Bài {n}", find=FIND_API, score=score,
                                                     session_time=session_time)
    files["imsmanifest.xml"] = MANIFEST_12.format(items="".join(items), resources="".join(resources))
    return build_zip(files)


def scorm2004(scos: int = 2, passing: float = 0.7, scaled: float = 0.9, probe: bool = False,
              session_time: str = "PT1M30S") -> bytes:
    """scorm2004: a SCORM 2004 4th edition package of `scos` SCOs with a scaled passing score (and, with `probe`,
    a last item whose script tries to reach the site)."""
    items, resources, files = [], [], {}
    for n in range(1, scos + 1):
        seq = (f'<imsss:sequencing><imsss:objectives><imsss:primaryObjective objectiveID="p{n}" '
               f'satisfiedByMeasure="true"><imsss:minNormalizedMeasure>{passing}</imsss:minNormalizedMeasure>'
               "</imsss:primaryObjective></imsss:objectives></imsss:sequencing>")
        items.append(f'<item identifier="ITEM-{n}" identifierref="RES-{n}"><title>Phần {n}</title>{seq}</item>')
        resources.append(f'<resource identifier="RES-{n}" type="webcontent" adlcp:scormType="sco" '
                         f'href="phan-{n}.html"><file href="phan-{n}.html"/></resource>')
        files[f"phan-{n}.html"] = SCO_2004.format(title=f"Phần {n}", find=FIND_API, suspend=f"phan={n}",
                                                  scaled=scaled, raw=round(scaled * 10, 1), session_time=session_time)
    if probe:
        items.append('<item identifier="PROBE" identifierref="RES-PROBE"><title>Thăm dò</title></item>')
        resources.append('<resource identifier="RES-PROBE" type="webcontent" adlcp:scormType="sco" '
                         'href="probe.html"><file href="probe.html"/></resource>')
        files["probe.html"] = PROBE
    files["imsmanifest.xml"] = MANIFEST_2004.format(items="".join(items), resources="".join(resources))
    return build_zip(files)


def with_entry(base: bytes, name: str, content: bytes = b"x", mode: int | None = None,
               compress: int = zipfile.ZIP_DEFLATED) -> bytes:
    """with_entry: the ZIP `base` plus one raw entry (any name, optional Unix mode in the external attributes)."""
    buf = io.BytesIO(base)
    with zipfile.ZipFile(buf, "a", compress) as zf:
        info = zipfile.ZipInfo(name)
        info.compress_type = compress
        if mode is not None:
            info.create_system = 3
            info.external_attr = mode << 16
        zf.writestr(info, content)
    return buf.getvalue()


def symlink_package() -> bytes:
    """symlink_package: a SCORM 1.2 package with a symbolic link to /etc/passwd."""
    return with_entry(scorm12(), "sco-1/passwd", b"/etc/passwd", mode=stat.S_IFLNK | 0o777)


def bomb_package() -> bytes:
    """bomb_package: a SCORM 1.2 package with a 50 MB file of zeros (compressed about 1000 times)."""
    return with_entry(scorm12(), "sco-1/video.bin", b"\0" * (50 << 20))
