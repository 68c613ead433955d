// Webcam enrollment: a short burst with pose variety. Prompts the person through a few slight head poses,
// grabs a couple of frames per pose from the <video> into a <canvas>, sends each as a JPEG to /enroll/check,
// and puts the first good frame of each pose into the form's file input, so the ordinary form submit
// enrolls them (the server checks every photo again). One frame per pose keeps the templates different.
(function () {
  "use strict";
  var box = document.getElementById("webcam");
  if (!box) { return; }
  var POSES = [
    { key: "straight", label: "straight", say: "Look straight at the camera" },
    { key: "left", label: "slightly left", say: "Turn your head slightly left" },
    { key: "right", label: "slightly right", say: "Turn your head slightly right" },
    { key: "up", label: "chin up", say: "Tilt your chin slightly up" },
    { key: "down", label: "chin down", say: "Tilt your chin slightly down" }
  ];
  var PER_POSE = 2;      // a second chance per pose, for a blink or a blurred frame
  var SETTLE_MS = 700;   // time to move into the pose before its first frame
  var GAP_MS = 350;
  var shots = Math.min(parseInt(box.dataset.shots, 10) || POSES.length, POSES.length);
  var minGood = parseInt(box.dataset.minGood, 10) || 3;
  var checkUrl = box.dataset.checkUrl;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var video = document.getElementById("cam-video");
  var canvas = document.getElementById("cam-canvas");
  var startBtn = document.getElementById("cam-start");
  var shootBtn = document.getElementById("cam-shoot");
  var submitBtn = document.getElementById("enroll-submit");
  var status = document.getElementById("cam-status");
  var prompt = document.getElementById("cam-prompt");
  var list = document.getElementById("cam-shots");
  var input = document.getElementById("photos");

  function say(text, warn) { status.textContent = text; status.classList.toggle("warn", !!warn); }
  function wait(ms) { return new Promise(function (ok) { setTimeout(ok, ms); }); }
  function pictures(n) { return n + " good picture" + (n === 1 ? "" : "s"); }

  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    say("This browser cannot use the camera here (it needs https:// or http://localhost). Upload photos instead.");
    startBtn.disabled = true;
    return;
  }

  startBtn.addEventListener("click", function () {
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "user", width: { ideal: 1280 } }, audio: false })
      .then(function (stream) {
        // the burst may start only once frames arrive, else the first grabs are empty
        video.addEventListener("playing", function () {
          shootBtn.disabled = false;
          say("Camera on. Be alone in front of it, in good light, then take the burst and follow the prompts.");
        }, { once: true });
        video.srcObject = stream;
        video.hidden = false;
        startBtn.disabled = true;
      })
      .catch(function (err) { say("Cannot open the camera: " + err.name + " (" + err.message + ")."); });
  });

  function grab() {
    if (!video.videoWidth) { return Promise.resolve(null); }
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    return new Promise(function (ok) { canvas.toBlob(ok, "image/jpeg", 0.92); });
  }

  function check(blob, name) {
    if (!blob) { return Promise.resolve({ ok: false, reason: "no picture from the camera" }); }
    var form = new FormData();
    form.append("photo", blob, name);
    return fetch(checkUrl, { method: "POST", body: form, credentials: "same-origin",
                             headers: { "X-CSRF-Token": csrf } })
      .then(function (r) { return r.json(); })
      .catch(function (e) { return { ok: false, reason: "check failed: " + e }; });
  }

  // One list item per frame, added when the frame is taken and filled in when its verdict comes back.
  function row(frame) {
    var li = document.createElement("li");
    var img = document.createElement("img");
    img.width = 72; img.height = 72; img.alt = "webcam picture " + frame.n;
    if (frame.blob) { img.src = URL.createObjectURL(frame.blob); }
    li.appendChild(img);
    li.appendChild(document.createElement("div"));
    list.appendChild(li);
    return li;
  }

  function mark(frame, className, text) {
    var img = frame.li.firstChild;
    frame.li.className = className;
    if (frame.verdict && frame.verdict.crop && img.src !== frame.verdict.crop) {
      if (img.src.indexOf("blob:") === 0) { URL.revokeObjectURL(img.src); }
      img.src = frame.verdict.crop;
    }
    frame.li.lastChild.textContent = "Picture " + frame.n + " (" + POSES[frame.pose].label + "): " + text;
  }

  async function burst() {
    var frames = [];
    var n = 0;
    for (var p = 0; p < POSES.length; p++) {
      prompt.textContent = POSES[p].say;
      for (var k = 0; k < PER_POSE; k++) {
        await wait(k === 0 ? SETTLE_MS : GAP_MS);
        n += 1;
        var frame = { pose: p, n: n, name: "webcam-" + n + "-" + POSES[p].key + ".jpg", blob: await grab() };
        frame.li = row(frame);
        mark(frame, "", "checking…");
        // checked in the background, so the prompts keep their pace however slow the server is
        frame.done = check(frame.blob, frame.name).then(function (f, verdict) {
          f.verdict = verdict;
          mark(f, verdict.ok ? "ok" : "bad", verdict.ok ? "good" : verdict.reason);
        }.bind(null, frame));
        frames.push(frame);
      }
    }
    prompt.textContent = "Done, thank you.";
    say("Checking the pictures…");
    await Promise.all(frames.map(function (f) { return f.done; }));
    return frames;
  }

  shootBtn.addEventListener("click", async function () {
    shootBtn.disabled = true;
    submitBtn.disabled = true;   // a submit in the middle of the burst would enroll none of it
    box.setAttribute("aria-busy", "true");
    list.querySelectorAll("img[src^='blob:']").forEach(function (img) { URL.revokeObjectURL(img.src); });
    list.textContent = "";
    say("Follow the prompts.");
    try {
      var frames = await burst();
      var kept = [];
      POSES.forEach(function (pose, p) {   // the first good frame of each pose, so the kept ones differ
        var first = frames.find(function (f) { return f.pose === p && f.verdict.ok; });
        if (first && kept.length < shots) { kept.push(first); }
      });
      frames.forEach(function (f) {
        if (kept.indexOf(f) >= 0) { mark(f, "ok", "good, kept"); }
        else if (f.verdict.ok) {
          var twin = kept.some(function (k) { return k.pose === f.pose; });
          mark(f, "spare", "good, not needed (" + (twin ? "this pose already has one" : "enough pictures") + ")");
        }
      });
      var dt = new DataTransfer();
      Array.prototype.forEach.call(input.files, function (f) {   // keep uploads, replace earlier webcam shots
        if (f.name.indexOf("webcam-") !== 0) { dt.items.add(f); }
      });
      kept.forEach(function (f) { dt.items.add(new File([f.blob], f.name, { type: "image/jpeg" })); });
      input.files = dt.files;
      if (kept.length >= minGood) {
        say(pictures(kept.length) + " added to the photos. Press Enroll to store them.");
      } else {
        var few = kept.length ? "Only " + pictures(kept.length) + " (added to the photos)" : "No good picture";
        say(few + ": fewer than " + minGood + ", too few for the door to recognise this person reliably." +
            " See below why the others were refused, then take the burst again: alone, in good light," +
            " following the prompts.", true);
      }
    } finally {
      prompt.textContent = "";
      box.removeAttribute("aria-busy");
      shootBtn.disabled = false;
      submitBtn.disabled = false;
    }
  });
})();
