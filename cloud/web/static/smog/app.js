// Kalkulator Stop Smog: address autocomplete (ARIA combobox), the estimate as a table and an SVG bar chart,
// the application form (multipart, with an Idempotency-Key) and the status view behind the secret link.
// Plain ES module, no build step, no external resources.

const API = "/api/v1/smog";
const SVG_NS = "http://www.w3.org/2000/svg";
const money = new Intl.NumberFormat("pl-PL", { maximumFractionDigits: 0 });
const zl = (value) => `${money.format(Math.round(value))} zł`;
const $ = (id) => document.getElementById(id);

let chosenAddress = null; // {id, label}
let idempotencyKey = null;
let lastEstimate = null; // the estimate the comparison shows, to fill in the application from

function randomKey() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// --- address combobox -----------------------------------------------------------------------------------

function setupCombobox() {
  const input = $("address");
  const list = $("address-list");
  let options = [];
  let active = -1;
  let timer = null;
  let sequence = 0;

  const close = () => {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  };
  const highlight = (index) => {
    active = index;
    Array.from(list.children).forEach((item, i) => item.setAttribute("aria-selected", String(i === index)));
    if (index >= 0) {
      input.setAttribute("aria-activedescendant", `address-option-${index}`);
      list.children[index].scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  };
  const pick = (index) => {
    const address = options[index];
    if (!address) return;
    chosenAddress = { id: address.id, label: address.label };
    input.value = address.label;
    $("address_id").value = String(address.id);
    showError($("estimate-form"), "address_id", "");
    close();
  };
  const render = (found) => {
    options = found;
    list.replaceChildren();
    found.forEach((address, index) => {
      const item = document.createElement("li");
      item.id = `address-option-${index}`;
      item.setAttribute("role", "option");
      item.setAttribute("aria-selected", "false");
      item.textContent = address.label;
      item.addEventListener("mousedown", (event) => {
        event.preventDefault();
        pick(index);
      });
      list.append(item);
    });
    if (found.length === 0) {
      close();
      return;
    }
    list.hidden = false;
    input.setAttribute("aria-expanded", "true");
    highlight(-1);
  };
  const search = async () => {
    const query = input.value.trim();
    const mine = ++sequence;
    if (query.length < 2) {
      render([]);
      return;
    }
    try {
      const response = await fetch(`${API}/addresses?${new URLSearchParams({ q: query, limit: "8" })}`);
      if (mine !== sequence || !response.ok) return;
      render(await response.json());
    } catch {
      render([]);
    }
  };

  input.addEventListener("input", () => {
    chosenAddress = null;
    $("address_id").value = "";
    clearTimeout(timer);
    timer = setTimeout(search, 150);
  });
  input.addEventListener("keydown", (event) => {
    const open = !list.hidden && options.length > 0;
    if (event.key === "ArrowDown") {
      event.preventDefault();
      if (!open) {
        search();
        return;
      }
      highlight(active < options.length - 1 ? active + 1 : 0);
    } else if (event.key === "ArrowUp") {
      if (!open) return;
      event.preventDefault();
      highlight(active > 0 ? active - 1 : options.length - 1);
    } else if (event.key === "Enter") {
      if (open && active >= 0) {
        event.preventDefault();
        pick(active);
      }
    } else if (event.key === "Escape") {
      if (open) {
        event.preventDefault();
        close();
      }
    }
  });
  input.addEventListener("blur", () => setTimeout(close, 100));
}

// --- errors next to fields ------------------------------------------------------------------------------

function fieldOf(loc) {
  const parts = loc[0] === "body" || loc[0] === "query" || loc[0] === "header" ? loc.slice(1) : loc;
  return parts.join(".");
}

function showError(form, field, message) {
  const holder = form.querySelector(`.error[data-field="${CSS.escape(field)}"]`);
  if (!holder) return false;
  holder.textContent = message;
  const describedBy = holder.id;
  const control = form.querySelector(`[aria-describedby~="${CSS.escape(describedBy)}"]`);
  if (control) {
    if (message) control.setAttribute("aria-invalid", "true");
    else control.removeAttribute("aria-invalid");
  }
  return true;
}

function clearErrors(form, summary) {
  form.querySelectorAll(".error").forEach((holder) => showError(form, holder.dataset.field, ""));
  summary.hidden = true;
  summary.replaceChildren();
}

function showErrors(form, summary, errors) {
  const heading = document.createElement("p");
  heading.textContent = "Popraw zaznaczone pola:";
  const list = document.createElement("ul");
  for (const { field, message } of errors) {
    showError(form, field, message);
    const item = document.createElement("li");
    item.textContent = message;
    list.append(item);
  }
  summary.replaceChildren(heading, list);
  summary.hidden = false;
  const first = form.querySelector("[aria-invalid='true']");
  if (first) first.focus();
}

async function errorsFrom(response) {
  try {
    const body = await response.json();
    if (Array.isArray(body.detail)) {
      return body.detail.map((item) => ({ field: fieldOf(item.loc || []), message: item.msg }));
    }
    return [{ field: "", message: String(body.detail || "Nie udało się wysłać formularza.") }];
  } catch {
    return [{ field: "", message: `Serwer odpowiedział błędem ${response.status}. Spróbuj ponownie za chwilę.` }];
  }
}

// --- the estimate ---------------------------------------------------------------------------------------

function numberOrNull(id) {
  const text = $(id).value.trim().replace(",", ".");
  return text === "" ? null : Number(text);
}

function estimatePayload() {
  const payload = {
    address_id: chosenAddress ? chosenAddress.id : null,
    heated_area_m2: numberOrNull("heated_area_m2"),
    building_standard: $("building_standard").value,
    current_heating: $("current_heating").value,
    household_size: numberOrNull("household_size") ?? 1,
    hot_water: $("hot_water").checked,
  };
  const income = numberOrNull("income_pln_per_person_month");
  if (income !== null) payload.income_pln_per_person_month = income;
  const priceChange = numberOrNull("price_change_percent_per_year");
  if (priceChange !== null) payload.price_change_percent_per_year = priceChange;
  if ($("loan_wanted").checked) {
    payload.loan = {
      share_of_net_investment: 1,
      years: numberOrNull("loan_years"),
      annual_rate_percent: numberOrNull("loan_rate"),
    };
  }
  return payload;
}

async function submitEstimate(event) {
  event.preventDefault();
  const form = $("estimate-form");
  const summary = $("estimate-summary");
  clearErrors(form, summary);
  if (!chosenAddress) {
    showErrors(form, summary, [
      { field: "address_id", message: "Pole „adres”: wybierz adres domu z listy podpowiedzi." },
    ]);
    return;
  }
  const response = await fetch(`${API}/estimate`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(estimatePayload()),
  });
  if (!response.ok) {
    showErrors(form, summary, await errorsFrom(response));
    return;
  }
  renderResults(await response.json());
}

function cell(row, text, header = false) {
  const element = document.createElement(header ? "th" : "td");
  if (header) element.setAttribute("scope", "row");
  element.textContent = text;
  row.append(element);
  return element;
}

function renderResults(result) {
  lastEstimate = result;
  $("results-explanation").textContent = result.explanation_pl;
  const body = $("results-table").querySelector("tbody");
  body.replaceChildren();
  for (const option of result.options) {
    const row = document.createElement("tr");
    const name = cell(row, option.label_pl, true);
    if (!option.available) {
      row.classList.add("unavailable");
      const reason = document.createElement("span");
      reason.className = "reason";
      reason.textContent = ` Niedostępne: ${option.reason_pl}`;
      name.append(reason);
      for (let i = 0; i < 4; i += 1) cell(row, "—");
      cell(row, "");
    } else {
      cell(row, zl(option.investment.total_pln));
      cell(row, zl(option.subsidies_total_pln));
      cell(row, zl(option.yearly_bill.total_pln));
      cell(row, zl(option.cost_15_years_pln)).classList.add("total");
      const action = cell(row, "");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "secondary";
      button.textContent = "Złóż wniosek";
      button.setAttribute("aria-label", `Złóż wniosek: ${option.label_pl}`);
      button.addEventListener("click", () => openApplication(option.kind));
      action.append(button);
    }
    body.append(row);
  }
  renderChart(result.options.filter((option) => option.available), result.current_heating);
  $("results-version").textContent =
    `Dane w wersji ${result.data_version}. ${result.prices_assumption_pl} ` +
    `Każda kwota ma w odpowiedzi API klucze danych i wzory, z których ją policzono.`;
  $("results").hidden = false;
  $("results-heading").focus();
}

function svg(name, attributes, text) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

function renderChart(options, current) {
  const bars = options.map((option) => ({ label: option.label_pl, value: option.cost_15_years_pln }));
  if (current) bars.push({ label: `Bez zmiany: ${current.label_pl}`, value: current.cost_15_years_pln, today: true });
  const max = Math.max(...bars.map((bar) => bar.value), 1);
  // About as wide as a phone's screen, so that 14-unit text stays about 14 px there.
  const rowHeight = 46;
  const width = 360;
  const height = bars.length * rowHeight + 10;
  const chart = svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-labelledby": "chart-title chart-desc",
    class: "bars",
  });
  chart.append(svg("title", { id: "chart-title" }, "Koszt 15 lat według źródła ciepła"));
  chart.append(
    svg("desc", { id: "chart-desc" }, bars.map((bar) => `${bar.label}: ${zl(bar.value)}`).join("; ")),
  );
  bars.forEach((bar, index) => {
    const y = index * rowHeight + 5;
    const barWidth = Math.max(2, (bar.value / max) * (width - 95));
    chart.append(svg("text", { x: 0, y: y + 14, class: "bar-label" }, bar.label));
    chart.append(
      svg("rect", { x: 0, y: y + 20, width: barWidth, height: 18, class: bar.today ? "bar today" : "bar" }),
    );
    chart.append(svg("text", { x: barWidth + 6, y: y + 34, class: "bar-value" }, zl(bar.value)));
  });
  $("chart").replaceChildren(chart);
}

// --- the application ------------------------------------------------------------------------------------

// The application's figures the calculator already has, for the chosen source: the resident may correct them.
function fillFromEstimate(kind) {
  if (!lastEstimate) return;
  const option = lastEstimate.options.find((candidate) => candidate.kind === kind);
  const current = lastEstimate.current_heating;
  $("app_current_heating").value = current.kind;
  $("current_fuel_use_t_per_year").value =
    current.energy.quantity_unit === "t" ? String(current.energy.quantity_per_year) : "";
  $("planned_power_kw").value = String(lastEstimate.building.design_heat_power_kw);
  if (option && option.available) {
    $("estimated_cost_pln").value = String(Math.round(option.investment.total_pln));
    $("planned_consumption_per_year").value = String(option.energy.quantity_per_year);
    $("planned_consumption_unit").value = option.energy.quantity_unit;
  }
}

function openApplication(kind) {
  $("application").hidden = false;
  $("application-form").hidden = false;
  $("application-done").hidden = true;
  $("heat_source").value = kind;
  fillFromEstimate(kind);
  $("application-address").textContent = chosenAddress ? chosenAddress.label : "(wybierz adres w kroku 1)";
  $("application-heading").focus();
}

async function submitApplication(event) {
  event.preventDefault();
  const form = $("application-form");
  const summary = $("application-summary");
  clearErrors(form, summary);
  const data = new FormData(form);
  data.set("address_id", chosenAddress ? String(chosenAddress.id) : "");
  data.set("consent", $("consent").checked ? "true" : "false");
  if (!idempotencyKey) idempotencyKey = randomKey();
  const button = form.querySelector("button[type='submit']");
  button.disabled = true;
  try {
    const response = await fetch(`${API}/applications`, {
      method: "POST",
      headers: { "Idempotency-Key": idempotencyKey },
      body: data,
    });
    if (!response.ok) {
      showErrors(form, summary, await errorsFrom(response));
      return;
    }
    const filed = await response.json();
    idempotencyKey = null;
    const token = filed.status_url.split("/").pop();
    const link = `${window.location.origin}${window.location.pathname}#status=${token}`;
    $("case-number").textContent = filed.case_number;
    $("status-link").href = link;
    $("status-link").textContent = link;
    $("pdf-link").href = filed.pdf_url;
    form.hidden = true;
    $("application-done").hidden = false;
    $("application-done-heading").focus();
  } finally {
    button.disabled = false;
  }
}

// --- the status behind the secret link ------------------------------------------------------------------

async function showStatus() {
  const match = window.location.hash.match(/^#status=([A-Za-z0-9_-]{20,100})$/);
  if (!match) return;
  const section = $("status-section");
  const body = $("status-body");
  section.hidden = false;
  const response = await fetch(`${API}/applications/status/${match[1]}`);
  if (!response.ok) {
    body.textContent = "Nie znaleziono wniosku. Sprawdź, czy link jest kompletny.";
    return;
  }
  const status = await response.json();
  const summary = document.createElement("p");
  summary.textContent = `Sprawa ${status.case_number}: ${status.status_label_pl}.`;
  const list = document.createElement("ol");
  for (const event of status.history) {
    const item = document.createElement("li");
    const when = new Date(event.at).toLocaleString("pl-PL", { timeZone: "Europe/Warsaw" });
    item.textContent = `${when}: ${event.status_label_pl}${event.note ? ` – ${event.note}` : ""}`;
    list.append(item);
  }
  const pdf = document.createElement("a");
  pdf.href = `${API}/applications/status/${match[1]}/pdf`;
  pdf.textContent = "Pobierz wniosek (PDF)";
  body.replaceChildren(summary, list, pdf);
  $("status-heading").focus();
}

setupCombobox();
$("estimate-form").addEventListener("submit", submitEstimate);
$("application-form").addEventListener("submit", submitApplication);
window.addEventListener("hashchange", showStatus);
showStatus();
