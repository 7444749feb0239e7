// Log in with a personal token. A link of the form /login#token=… logs in directly: the
// fragment never reaches the server (nor its logs) and is wiped from the address bar.
import { getLang, setLang, translate } from "./i18n.js";

const form = document.getElementById("login-form");
const input = document.getElementById("token");
const error = document.getElementById("login-error");

async function login(token) {
  const resp = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token }),
    credentials: "same-origin",
  });
  if (resp.ok) {
    location.replace("/");
    return;
  }
  error.hidden = false;
}

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  error.hidden = true;
  login(input.value.trim());
});

document.getElementById("lang-switch").addEventListener("click", (ev) => {
  ev.preventDefault();
  setLang(getLang() === "en" ? "zh" : "en");
  translate();
});

function fromFragment() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    history.replaceState(null, "", "/login");
    login(decodeURIComponent(m[1]));
  }
}

translate();
window.addEventListener("hashchange", fromFragment);
fromFragment();
