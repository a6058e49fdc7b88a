// agegate: the screen's "Use a digital ID" option, shown only where the browser has the W3C
// Digital Credentials API. Without the API this script changes nothing: the typed date stays.
// The request (which names the age claim asked for) is fetched only when the visitor chooses
// this option, so the page itself never shows the threshold.
(function () {
  "use strict";
  var box = document.getElementById("agegate-dc");
  if (!box || !("credentials" in navigator) || typeof window.DigitalCredential === "undefined") {
    return;
  }
  var button = document.getElementById("agegate-dc-button");
  var status = document.getElementById("agegate-dc-status");
  var form = document.querySelector("form");
  box.hidden = false;

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify(body),
    }).then(function (response) {
      return response.json().then(function (json) {
        return { ok: response.ok, json: json };
      });
    });
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    status.textContent = "";
    post(box.dataset.request, {})
      .then(function (answer) {
        if (!answer.ok) {
          throw new Error("request");
        }
        return navigator.credentials.get({ mediation: "required", digital: { requests: [answer.json] } });
      })
      .then(function (credential) {
        return post(box.dataset.verify, { protocol: credential.protocol, data: credential.data });
      })
      .then(function (answer) {
        if (answer.ok && answer.json.outcome === "allowed") {
          window.location.assign(box.dataset.next);
        } else if (answer.ok && form) {
          form.submit(); // under age: the screen answers with its own page
        } else {
          status.textContent = box.dataset.failed;
          button.disabled = false;
        }
      })
      .catch(function (error) {
        // The visitor closed the wallet: nothing to say; anything else: say so, keep the form.
        var cancelled = error && (error.name === "NotAllowedError" || error.name === "AbortError");
        status.textContent = cancelled ? "" : box.dataset.failed;
        button.disabled = false;
      });
  });
})();
