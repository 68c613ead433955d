// Webcam enrollment: "take N pictures of me". Grabs frames from the <video> into a <canvas>, sends each
// as a JPEG to /enroll/check for immediate feedback, and puts the good ones into the form's file input,
// so the ordinary form submit enrolls them (the server checks every photo again).
(function () {
  "use strict";
  var box = document.getElementById("webcam");
  if (!box) { return; }
  var shots = parseInt(box.dataset.shots, 10) || 3;
  var checkUrl = box.dataset.checkUrl;
  var csrf = document.querySelector('meta[name="csrf-token"]').content;
  var video = document.getElementById("cam-video");
  var canvas = document.getElementById("cam-canvas");
  var startBtn = document.getElementById("cam-start");
  var shootBtn = document.getElementById("cam-shoot");
  var status = document.getElementById("cam-status");
  var list = document.getElementById("cam-shots");
  var input = document.getElementById("photos");

  function say(text) { status.textContent = text; }
  function wait(ms) { return new Promise(function (ok) { setTimeout(ok, ms); }); }

  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    say("This browser cannot use the camera here (it needs https:// or http://localhost). Upload photos instead.");
    startBtn.disabled = true;
    return;
  }

  startBtn.addEventListener("click", function () {
    navigator.mediaDevices.getUserMedia({ video: { facingMode: "user", width: { ideal: 1280 } }, audio: false })
      .then(function (stream) {
        video.srcObject = stream;
        video.hidden = false;
        shootBtn.disabled = false;
        startBtn.disabled = true;
        say("Camera on. Look into it, alone, in good light, then take the pictures.");
      })
      .catch(function (err) { say("Cannot open the camera: " + err.name + " (" + err.message + ")."); });
  });

  function grab() {
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
    return new Promise(function (ok) { canvas.toBlob(ok, "image/jpeg", 0.92); });
  }

  function check(blob, n) {
    var form = new FormData();
    form.append("photo", blob, "webcam-" + n + ".jpg");
    return fetch(checkUrl, { method: "POST", body: form, credentials: "same-origin",
                             headers: { "X-CSRF-Token": csrf } })
      .then(function (r) { return r.json(); });
  }

  function show(blob, verdict, n) {
    var li = document.createElement("li");
    li.className = verdict.ok ? "ok" : "bad";
    var img = document.createElement("img");
    img.width = 72; img.height = 72; img.alt = "webcam picture " + n;
    img.src = verdict.crop || URL.createObjectURL(blob);
    var text = document.createElement("div");
    text.textContent = "Picture " + n + ": " + (verdict.ok ? "good" : verdict.reason);
    li.appendChild(img); li.appendChild(text);
    list.appendChild(li);
  }

  shootBtn.addEventListener("click", async function () {
    shootBtn.disabled = true;
    list.textContent = "";
    var good = [];
    for (var n = 1; good.length < shots && n <= shots * 3; n++) {
      say("Taking picture " + n + "… (" + good.length + " of " + shots + " good so far)");
      await wait(700);
      var blob = await grab();
      var verdict;
      try { verdict = await check(blob, n); } catch (e) { verdict = { ok: false, reason: "check failed: " + e }; }
      show(blob, verdict, n);
      if (verdict.ok) { good.push(new File([blob], "webcam-" + n + ".jpg", { type: "image/jpeg" })); }
    }
    var dt = new DataTransfer();
    Array.prototype.forEach.call(input.files, function (f) {   // keep uploads, replace earlier webcam shots
      if (f.name.indexOf("webcam-") !== 0) { dt.items.add(f); }
    });
    good.forEach(function (f) { dt.items.add(f); });
    input.files = dt.files;
    say(good.length + " good pictures added to the photos. Press Enroll to store them." +
        (good.length < shots ? " Some were refused: see why below." : ""));
    shootBtn.disabled = false;
  });
})();
