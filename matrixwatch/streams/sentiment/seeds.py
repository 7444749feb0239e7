"""Hand-written training seeds: government notice style is neutral.

None of the public data sets has government notices in it, yet they are most of what a
政务 account publishes. Without these seeds a notice such as "防范安全事故" reads as
negative (事故) and a duty officer gets a false flag. The sentences below were written for
this project (not copied from any data set) and are combined from templates so that the
model learns the *register* of a notice (要/请/做好/加强/通知/预警…) rather than its topic.

A few polar contrast sentences on the same topics keep the model from learning "any text
about 防汛 is neutral": a complaint about flood control is still negative.
"""

from __future__ import annotations

from itertools import product

_TITLES = (
    "关于做好{t}工作的通知",
    "关于进一步加强{t}工作的通知",
    "关于开展{t}专项检查的通知",
    "关于印发{t}工作方案的通知",
    "关于{t}有关事项的公告",
    "{t}工作提示",
    "{t}温馨提示",
    "关于{t}的情况通报",
)
_TOPICS = (
    "防汛",
    "防汛抗旱",
    "安全生产",
    "森林防火",
    "疫情防控",
    "道路交通安全",
    "燃气安全",
    "食品安全",
    "消防安全",
    "地质灾害防治",
    "防范电信网络诈骗",
    "冬季取暖安全",
    "校园安全",
    "危险化学品安全",
    "防台风",
    "高温天气防范",
    "汛期安全事故防范",
    "建筑施工安全",
    "节假日值班",
    "人口普查",
    "医保缴费",
    "征兵",
)
_BODIES = (
    "各单位要加强值班值守，防范安全事故",
    "各单位要严格落实24小时值班和领导带班制度，确保信息畅通",
    "请各乡镇（街道）认真排查隐患，发现问题及时上报",
    "各有关部门要压实责任，加强巡查，防范各类事故发生",
    "请广大市民关注预警信息，减少不必要的外出",
    "请各单位于本月底前将工作开展情况报送办公室",
    "现将有关事项通知如下，请认真贯彻执行",
    "各地要做好应急物资储备，确保一旦发生险情能够快速处置",
    "请相关企业落实主体责任，开展自查自纠",
    "如遇紧急情况，请拨打110、119或120求助",
    "各级各部门要加强监测预警，及时发布风险提示",
    "请各位居民注意用电用气安全，外出时关闭电源和燃气阀门",
)
_STANDALONE = (
    "市气象台发布暴雨黄色预警信号，预计未来6小时内我市部分地区降雨量将达50毫米以上",
    "受台风影响，明日全市中小学、幼儿园停课一天，请家长做好安排",
    "今日9时至17时，人民路部分路段实施交通管制，请过往车辆提前绕行",
    "区应急管理局召开安全生产工作会议，部署近期重点任务",
    "我市发生一起交通事故，造成1人受伤，事故原因正在进一步调查中",
    "昨日下午，某小区发生一起火灾，消防救援人员及时赶到处置，未造成人员伤亡",
    "关于2024年国庆节放假安排的通知：10月1日至7日放假调休，共7天",
    "县人民政府召开常务会议，研究部署防汛救灾和灾后重建工作",
    "市卫生健康委通报：昨日0时至24时，全市新增确诊病例3例，均为集中隔离人员",
    "区人社局发布公开招聘事业单位工作人员公告，报名时间为3月1日至3月7日",
    "办事指南：居民身份证办理需携带户口簿，可在户籍所在地派出所办理",
    "政策解读：新修订的《安全生产法》自9月1日起施行",
    "市防汛抗旱指挥部决定，自今日12时起启动防汛IV级应急响应",
    "根据气象部门预报，本周末我市将出现大风降温天气，最低气温零下5摄氏度",
    "市生态环境局公布上月全市空气质量状况，优良天数比例为85.2%",
    "因管道维修，明日8时至18时城东片区将暂停供水，请居民提前储水",
    "街道办事处开展地质灾害隐患点排查，共排查隐患点12处",
    "区市场监管局开展节前食品安全专项检查，共检查经营单位56家",
    "公安机关提醒：陌生来电要求转账的，一律是诈骗",
    "区政务服务中心周六正常办公，办理时间为上午9时至下午5时",
    "市交通运输局发布春运期间客运班次调整信息",
    "我县召开森林防火工作推进会，安排部署下一阶段工作",
    "事故发生后，当地立即启动应急预案，组织力量开展救援，伤者已送医救治",
    "经调查，该起事故系驾驶员操作不当所致，相关责任人已被依法处理",
    "接群众反映后，区城管局已安排人员到现场核查，后续处理情况将及时公布",
    "市教育局发布2024年中考报名工作安排",
    "本次会议传达学习了上级有关文件精神，并对下一步工作作出安排",
    "请各位游客遵守景区管理规定，注意人身和财产安全",
    "全市共设置临时避险安置点32处，可容纳群众一万余人",
    "预计本次降雨过程将持续至明天夜间，请有关单位做好防范应对",
    "水利局对全县小型水库开展汛前安全检查",
    "关于征集2024年民生实事项目的公告",
    "社区开展消防安全知识宣传活动，发放宣传资料300余份",
    "县应急管理局提示：雷雨天气请勿在大树下避雨",
    "市统计局发布一季度国民经济运行情况",
    "根据工作安排，本周三下午开展防空警报试鸣",
    "各村要组织力量对危旧房屋进行排查，及时转移危险区域群众",
    "关于公布第一批市级非物质文化遗产代表性项目名录的通知",
    "全区各级各部门要认真落实疫情防控各项措施",
    "区委召开理论学习中心组学习会议",
)
# Polar contrast on the same topics: still negative or positive, notice words or not.
NEGATIVE_CONTRAST = (
    "防汛说了半个月，村里被淹了三天都没人管，这就是你们的值班值守？",
    "天天发通知，事故还是一起接一起，监管部门到底在干什么",
    "停水也不提前说一声，物业和自来水公司互相推诿，太气人了",
    "投诉了三次都没人理，热线电话永远打不通，失望透顶",
    "出了事故就删帖封号，真相到底是什么，给个说法",
    "这个政策简直坑人，办个证跑了五趟还没办下来",
    "道路塌陷好几天了没人修，今天又有人摔倒，太危险了",
    "明明是管理失职，通报却轻描淡写，寒心",
)
POSITIVE_CONTRAST = (
    "防汛一线的工作人员辛苦了，连夜转移群众，为你们点赞",
    "消防员叔叔太棒了，及时救出了被困群众，致敬！",
    "这次办事真方便，窗口工作人员热情耐心，点赞",
    "感谢社区的志愿者们，暴雨天还挨家挨户送物资，暖心",
    "道路终于修好了，出行方便多了，谢谢政府",
    "疫情期间医护人员辛苦了，感谢你们的付出",
)


def neutral_notices() -> list[str]:
    """Every neutral seed: templated titles × bodies plus the stand-alone sentences."""
    out: list[str] = []
    for i, (title, topic) in enumerate(product(_TITLES, _TOPICS)):
        out.append(title.format(t=topic))
        out.append(title.format(t=topic) + "：" + _BODIES[i % len(_BODIES)])
    out.extend(_BODIES)
    out.extend(_STANDALONE)
    return out


# Citizens' service questions under a government post are neutral: asking where, when or
# how to get something done is neither praise nor complaint. The public sets hardly have
# them (their short questions are mostly rhetorical complaints: 28 of the 41 short
# question-like rows of SMP2020's two eval sets are negative), and ngram-osm before
# them called 76 % of the simulated feed's service questions negative (47 % of all its
# "negative" comments). Written for this project, combined from templates so that the
# neutrality head learns the register of a service question, not its topics; the
# rhetorical complaints below keep "a question" from meaning "neutral".
_Q_OPENERS = ("请问", "你好，请问", "想咨询一下，", "打扰一下，请问", "小编好，想问下", "")
_Q_SERVICES = (
    "居住证", "社保卡", "医保报销", "公积金提取", "新生儿落户", "不动产登记", "营业执照",
    "老年优待证", "护照", "结婚登记", "残疾人证", "灵活就业参保", "电动车上牌", "学位申请",
)
_Q_FORMS = (
    "{s}在哪个窗口办理？",
    "{s}要准备哪些材料？",
    "{s}能在网上办吗？",
    "{s}大概多久能办好？",
    "{s}办理要收费吗？",
    "{s}可以委托家人代办吗？",
    "{s}需要先预约吗？",
    "异地的{s}怎么办理？",
)
_Q_STANDALONE = (
    "政务服务中心几点开门？",
    "这个补贴的申请入口在哪里？",
    "报名是在线上还是到现场？",
    "今年的入学登记从哪天开始？",
    "这个政策对退休人员也适用吗？",
    "个体户也可以申请这项补助吗？",
    "明天的讲座需要提前报名吗？",
    "疫苗接种需要带身份证吗？",
    "节假日期间办事大厅正常上班吗？",
    "公交线路调整后还经过火车站吗？",
    "停车场改造期间在哪里停车？",
    "活动现场有没有停车位？",
    "咨询电话是多少？",
    "线上申请提交后多久会有结果？",
    "孩子的医保在哪里缴费？",
    "考试成绩什么时候可以查询？",
)
COMPLAINT_QUESTIONS = (
    "投诉了好几次，到底什么时候才能解决？",
    "为什么办个证要跑这么多趟？能不能别折腾人了",
    "窗口工作人员态度这么差，就没人管管吗？",
    "说好的月底修好呢？怎么又拖了？",
    "凭什么外地户籍就不能办？这公平吗？",
    "热线永远打不通，这是摆设吗？",
    "路灯坏了一个月没人修，你们看不见吗？",
    "收了钱不办事，还有没有王法了？",
    "天天发这些有什么用？问题解决了吗？",
    "噪音扰民这么久，有关部门在干什么？",
)


def _templated(starts: tuple[str, ...], items: tuple[str, ...], forms: tuple[str, ...],
               *more: list[str] | tuple[str, ...]) -> list[str]:
    """start + form(item) for every combination, in order, then the ``more`` sentences."""
    out = [a + f.format(s=s) for a, s, f in product(starts, items, forms)]
    for extra in more:
        out.extend(extra)
    return out


def service_questions() -> list[str]:
    """Every neutral service-question seed: openers × services × forms, plus the rest."""
    return _templated(_Q_OPENERS, _Q_SERVICES, _Q_FORMS, _Q_STANDALONE,
                      ["请问" + q for q in _Q_STANDALONE])


# Warnings an account publishes to protect people (反诈, 防溺水, 防火) are notices too, but
# they are made of alarming words (诈骗, 冒充, 溺亡), and the model called them negative:
# the anti-fraud notice was most of the simulated feed's 515 "negative" government posts
# out of 4,519. Written for this project, not the simulator's wording; the complaints
# about fraud cases below keep the topic itself from meaning "neutral".
_W_HEADS = ("【反诈提醒】", "【警方提示】", "#反诈宣传#", "【防骗指南】", "")
_W_SCAMS = (
    "刷单返利", "冒充公检法", "虚假投资理财", "网络贷款", "冒充熟人借钱", "游戏装备交易",
    "注销校园贷", "虚假中奖", "冒充领导", "养老投资",
)
_W_FORMS = (
    "{s}类诈骗案件近期多发，请广大市民提高警惕",
    "警方提醒：凡是要求{s}并先行转账的，都是诈骗",
    "如遇{s}，请立即拨打110或96110咨询",
    "{s}骗局揭秘：不轻信、不透露、不转账",
)
_W_STANDALONE = (
    "【防溺水提醒】暑期将至，请家长加强对孩子的看护，不到无安全设施的水域游泳",
    "【消防提示】冬季用火用电增多，请勿私拉乱接电线，电动车不要进楼入户充电",
    "【安全提示】近期雷雨天气频繁，请勿在大树下避雨，注意防范雷击",
    "【防汛提醒】强降雨期间请远离河道、低洼地带，注意人身安全",
    "【交通安全提示】酒后不开车，开车不喝酒",
    "【防范提示】陌生来电自称银行工作人员的，切勿点击对方发来的链接",
)
FRAUD_COMPLAINTS = (
    "被骗了三万块，报警一个月了还没有任何进展，太失望了",
    "天天宣传反诈，我被冒充客服骗了钱找谁都没人管",
    "骗子这么猖狂，你们到底管不管？",
    "刷单被骗的钱追不回来，心都碎了",
)


def warning_notices() -> list[str]:
    """Every neutral warning-notice seed: heads × scams × forms, plus the rest."""
    return _templated(_W_HEADS, _W_SCAMS, _W_FORMS, _W_STANDALONE)
