// UI text: Chinese by default, English on request (?lang=en or the 中/EN switch).
const DICT = {
  zh: {
    title: "矩阵舆情值班台", login: "登录", token: "访问令牌", login_hint: "请输入管理员发放的个人令牌",
    login_failed: "令牌无效", logout: "退出", lang: "EN",
    tab_alerts: "告警", tab_handover: "交接班", tab_feed: "负面动态", tab_matrix: "矩阵联动",
    tab_charts: "图表", tab_admin: "管理",
    live_on: "实时连接", live_off: "连接中断，重连中…",
    status: "状态", severity: "级别", all: "全部", open: "未关闭", new: "新告警",
    acknowledged: "已确认", closed: "已关闭", assignee: "处置人", unassigned: "未指派",
    ack: "确认", assign: "指派", note: "备注", close: "关闭", reopen: "重新打开",
    note_placeholder: "处置情况…", history: "处置记录", samples: "样例内容", values: "触发数值",
    no_alerts: "暂无告警", new_alert: "新告警", account: "账号", unit: "单位", level: "层级",
    platform: "平台", sentiment: "情感", kind: "类型", search: "全文搜索", load_more: "加载更多",
    negative: "负面", neutral: "中性", positive: "正面", post: "原创", repost: "转发", comment: "评论",
    about: "涉及账号", no_events: "没有符合条件的内容", time_note: "时间均为北京时间",
    ref_time: "参考时间", clock_event: "（按库内最新事件时间）", clock_wall: "（按系统时间）",
    open_tasks: "进行中的联动任务", closed_tasks: "近期已截止任务", progress: "进度",
    deadline: "截止", countdown: "剩余", laggards: "未转发账号", superior: "上级账号",
    published: "发布时间", post_text: "内容", response_table: "各账号响应率",
    expected: "应转发", linked: "已转发", rate: "响应率", median_latency: "中位用时",
    last_post: "最近更新", stale: "久未更新账号", silent_days: "未更新天数", never: "从未发布",
    none: "无", overdue: "已到期",
    chart_volume: "声量与负面占比", chart_linkage: "下级联动率", volume: "声量",
    negative_share: "负面占比", choose_account: "选择账号", choose_unit: "或选择单位",
    days: "天数", closed_rate: "已截止任务响应率", open_rate: "进行中任务（目前）",
    handover_title: "交接班", shift_since: "本班开始", open_alerts: "未关闭告警",
    shift_actions: "本班处置记录", handover_notes: "交班留言", add_note: "添加留言",
    user: "用户", action: "操作", at: "时间", target: "对象", print: "打印",
    registry: "账号矩阵（matrix.yaml）", validate: "校验", upload: "上传并替换",
    audit: "审计日志", restart_note: "写入后需重启 worker 生效", forbidden: "无权限",
    valid: "校验通过", invalid: "校验失败", accounts: "账号数", role: "角色",
    "duty-officer": "值班员", "matrix-manager": "矩阵管理员",
    red: "红色", orange: "橙色", yellow: "黄色", blue: "蓝色",
    spike: "声量突增", negative_surge: "负面激增", keyword: "关注词命中",
    stale_account: "账号久未更新", unanswered: "网民提问未回复", linkage_lagging: "联动进度滞后",
    linkage_low: "联动率偏低", collector_health: "采集异常",
    national: "国家级", province: "省级", city: "市级", county: "区县级", township: "乡镇级",
    department: "部门", save: "保存", cancel: "取消", refresh: "刷新", loading: "加载中…",
    error: "出错了",
  },
  en: {
    title: "Matrix duty console", login: "Log in", token: "Access token",
    login_hint: "Enter the personal token your administrator gave you",
    login_failed: "Unknown token", logout: "Log out", lang: "中文",
    tab_alerts: "Alerts", tab_handover: "Hand-over", tab_feed: "Negative feed",
    tab_matrix: "Matrix linkage", tab_charts: "Charts", tab_admin: "Admin",
    live_on: "Live", live_off: "Disconnected, reconnecting…",
    status: "Status", severity: "Severity", all: "All", open: "Open", new: "New",
    acknowledged: "Acknowledged", closed: "Closed", assignee: "Assignee", unassigned: "Unassigned",
    ack: "Acknowledge", assign: "Assign", note: "Note", close: "Close", reopen: "Reopen",
    note_placeholder: "What was done…", history: "History", samples: "Sample posts",
    values: "Numbers that fired", no_alerts: "No alerts", new_alert: "New alert",
    account: "Account", unit: "Unit", level: "Level", platform: "Platform",
    sentiment: "Sentiment", kind: "Kind", search: "Full-text search", load_more: "Load more",
    negative: "Negative", neutral: "Neutral", positive: "Positive", post: "Post",
    repost: "Repost", comment: "Comment", about: "About", no_events: "Nothing matches",
    time_note: "Times are Beijing time (Asia/Shanghai)", ref_time: "Reference time",
    clock_event: "(latest event time in the store)", clock_wall: "(wall clock)",
    open_tasks: "Open linkage tasks", closed_tasks: "Recently closed tasks",
    progress: "Progress", deadline: "Deadline", countdown: "Remaining", laggards: "Not yet reposted",
    superior: "Superior", published: "Published", post_text: "Post", response_table: "Response rate by account",
    expected: "Expected", linked: "Linked", rate: "Rate", median_latency: "Median latency",
    last_post: "Last update", stale: "Stale accounts", silent_days: "Days silent", never: "never posted",
    none: "none", overdue: "due",
    chart_volume: "Volume and negative share", chart_linkage: "Linkage rate per subordinate",
    volume: "Volume", negative_share: "Negative share", choose_account: "Account",
    choose_unit: "or unit", days: "Days", closed_rate: "Closed tasks rate",
    open_rate: "Open tasks (so far)", handover_title: "Shift hand-over",
    shift_since: "Shift started", open_alerts: "Open alerts", shift_actions: "Done during the shift",
    handover_notes: "Hand-over notes", add_note: "Add note", user: "User", action: "Action",
    at: "Time", target: "Target", print: "Print", registry: "Account registry (matrix.yaml)",
    validate: "Validate", upload: "Upload and replace", audit: "Audit log",
    restart_note: "The worker applies it on restart", forbidden: "Not allowed",
    valid: "Valid", invalid: "Invalid", accounts: "Accounts", role: "Role",
    "duty-officer": "duty officer", "matrix-manager": "matrix manager",
    red: "red", orange: "orange", yellow: "yellow", blue: "blue",
    spike: "Volume spike", negative_surge: "Negative surge", keyword: "Watch-list hit",
    stale_account: "Stale account", unanswered: "Unanswered question",
    linkage_lagging: "Linkage lagging", linkage_low: "Low linkage rate",
    collector_health: "Collector health", national: "national", province: "province",
    city: "city", county: "county", township: "township", department: "department",
    save: "Save", cancel: "Cancel", refresh: "Refresh", loading: "Loading…", error: "Error",
  },
};

function initialLang() {
  const q = new URLSearchParams(location.search).get("lang");
  if (q === "en" || q === "zh") {
    localStorage.setItem("mw-lang", q);
    return q;
  }
  return localStorage.getItem("mw-lang") === "en" ? "en" : "zh";
}

let lang = initialLang();

export function getLang() {
  return lang;
}

export function setLang(next) {
  lang = next === "en" ? "en" : "zh";
  localStorage.setItem("mw-lang", lang);
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
}

export function t(key) {
  return (DICT[lang] && DICT[lang][key]) || DICT.zh[key] || key;
}

// Fill every [data-i18n] element (static parts of the pages).
export function translate(root = document) {
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
}

const FMT = {};

// Asia/Shanghai, whatever the browser's own zone: duty officers read Beijing time.
export function fmtTime(iso, withDate = true) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const key = `${withDate}`;
  FMT[key] ??= new Intl.DateTimeFormat("zh-CN", {
    timeZone: "Asia/Shanghai", hour12: false,
    ...(withDate ? { year: "numeric", month: "2-digit", day: "2-digit" } : {}),
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  return FMT[key].format(d).replaceAll("/", "-");
}

export function fmtDuration(seconds) {
  if (seconds == null) return "–";
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (lang === "en") return h ? `${h}h ${m}m` : `${m}m ${sec}s`;
  return h ? `${h}小时${m}分` : `${m}分${sec}秒`;
}
