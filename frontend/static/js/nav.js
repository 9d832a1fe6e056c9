// Navigation bar: burger toggle on small screens; open drop-down menus close on outside clicks and Escape.

const toggle = document.querySelector("[data-nav-toggle]");
const links = document.getElementById("nav-links");
if (toggle && links) {
  toggle.addEventListener("click", () => {
    const open = links.classList.toggle("open");
    toggle.setAttribute("aria-expanded", String(open));
  });
}

function closeMenus(except = null) {
  for (const d of document.querySelectorAll("details.nav-menu[open], details.dropdown[open]")) {
    if (d !== except && !d.contains(except)) d.open = false;
  }
}

document.addEventListener("click", (e) => {
  const inside = e.target.closest("details.nav-menu, details.dropdown");
  closeMenus(inside);
});
document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeMenus(); });
