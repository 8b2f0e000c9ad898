"""The header spellings of registers, per kind and canonical field, so that the usual files (a
Chinese grid register, an Open311 or city 311 export, a business-licence register) are read
with no options.

Each field lists its spellings in priority order, English and Chinese mixed: when two headers
of one file spell the same field (New York's 311 export has ``incident_address`` and
``location``), the one listed first wins and the other is reported as shadowed. An export
writes the first Chinese (or English) spelling, so it reads back with no options. Spellings
are compared normalised (``normalise``): case, spaces, underscores, hyphens, ``*`` marks and
full-width forms do not matter.
"""

from __future__ import annotations

import re
import unicodedata

# Latitude and longitude are spelled alike in every kind. No bare "x"/"y": city exports use
# those for projected coordinates (New York's state plane feet), not degrees.
_LAT = ("lat", "纬度", "latitude", "维度", "wgs84纬度", "lat_wgs84", "y_lat")
_LON = ("lon", "经度", "long", "lng", "longitude", "wgs84经度", "lon_wgs84", "x_lon")
_PHONE = ("phone", "联系电话", "电话", "手机", "手机号", "手机号码", "mobile", "telephone", "tel")

# fmt: off
FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    # One row per person: the household's columns repeat on each member's row.
    "households": {
        "code": ("household_code", "户编号", "户号", "户编码"),
        "building": ("building_code", "楼栋编码", "楼栋编号", "楼栋代码", "楼栋", "building"),
        "lat": _LAT,
        "lon": _LON,
        "unit": ("unit", "单元", "单元号"),
        "room": ("room", "房号", "门牌号", "门牌", "房间号", "室号", "户室号"),
        "class": ("class", "户类别", "household_class", "户分类", "类别", "分类"),
        "moved_in": ("moved_in", "入住日期", "入住时间", "moved_in_date"),
        "contact_preference": ("contact_preference", "联系偏好", "首选联系方式", "联系方式偏好"),
        "visit_times": ("visit_times", "走访时间", "方便走访时间", "可走访时间"),
        "notes": ("notes", "备注", "note", "remarks"),
        # The person's code (<household>-NN), as an export writes it: tells apart members a
        # register cannot (twins of one name and year, without ID numbers).
        "member_code": ("member_code", "成员编号"),
        "name": ("name", "姓名", "成员姓名", "居民姓名", "full_name"),
        "gender": ("gender", "性别", "sex"),
        "relation": ("relation", "与户主关系", "关系", "家庭关系", "relationship"),
        "birth_year": ("birth_year", "出生年份", "出生年", "year_of_birth"),
        # The loader derives the birth year from a date (any ISO or usual Chinese form).
        "birth_date": ("birth_date", "出生日期", "出生年月", "出生年月日", "生日", "date_of_birth",
                       "dob", "birthday"),
        "phone": _PHONE,
        "id_number": ("id_number", "身份证号", "身份证号码", "公民身份号码", "身份证", "证件号码",
                      "证件号", "id_card"),
        "elderly_living_alone": ("elderly_living_alone", "独居老人", "独居"),
        "childless_elderly": ("childless_elderly", "孤寡老人", "孤寡"),
        "bereaved": ("bereaved", "失独", "失独老人", "失独家庭"),
        "low_income": ("low_income", "低保", "低保户", "低保对象"),
        "disabled": ("disabled", "残疾", "残疾人", "残障"),
        "entitled_group": ("entitled_group", "优抚对象", "优抚"),
        "seeking_work": ("seeking_work", "求职", "求职意向", "待业"),
    },
    "workers": {
        "code": ("staff_number", "工号", "staff_no", "code", "worker_code", "员工编号", "人员编号",
                 "employee_id", "编号"),
        "name": ("name", "姓名", "full_name"),
        "phone": _PHONE,
        "role": ("role", "角色", "岗位"),
        "subdistrict": ("subdistrict_code", "街道编码", "街道代码", "subdistrict", "所属街道",
                        "街道"),
        "community": ("community_code", "社区编码", "社区代码", "community", "所属社区",
                      "社区"),
        # Several codes in one cell, separated by ; , 、 or spaces (tables.split_list).
        "grids": ("grids", "网格编码", "grid_codes", "grid_code", "网格代码", "负责网格",
                  "所属网格", "网格", "grid"),
        "unit": ("unit_code", "单位编码", "单位代码", "部门编码", "unit", "单位", "所属单位",
                 "部门"),
    },
    "merchants": {
        "code": ("merchant_code", "商户编码", "商户编号", "统一社会信用代码", "license_number",
                 "licence_number", "营业执照号", "营业执照注册号", "营业执照号码", "注册号",
                 "credit_code", "code"),
        # A trading name before the legal one: it is what the shop front says.
        "name": ("name", "商户名称", "名称", "店名", "doing_business_as_name", "dba_name", "dba",
                 "business_name", "企业名称", "字号", "legal_name"),
        "category": ("category", "类别", "行业", "行业类别", "经营类别", "业态",
                     "license_description", "licence_description", "business_activity",
                     "business_type", "type"),
        "address": ("address", "地址", "经营地址", "经营场所", "详细地址", "street_address"),
        "employees": ("employees", "员工数", "员工人数", "从业人数", "从业人员", "职工人数",
                      "number_of_employees", "employee_count"),
        "lat": _LAT,
        "lon": _LON,
        "contact": ("contact", "联系电话", "联系方式", "电话", "phone", "telephone"),
        "opening_hours": ("opening_hours", "营业时间", "hours"),
    },
    "openings": {
        "code": ("opening_code", "岗位编号", "岗位编码", "code"),
        "merchant": ("merchant_code", "商户编码", "商户编号", "统一社会信用代码", "license_number",
                     "merchant", "商户"),
        "title": ("title", "岗位", "岗位名称", "职位", "职位名称", "job_title", "position"),
        "skills": ("skills", "技能", "技能要求", "所需技能"),
        "shifts": ("shifts", "班次", "工作时段", "时段", "shift"),
        "weekly_hours": ("weekly_hours", "每周工时", "周工时", "每周小时数", "hours_per_week"),
        # The database keeps yuan per hour; a monthly figure is a field of its own for the
        # loader to convert, never read as hourly.
        "wage": ("wage", "时薪", "hourly_wage", "工资(元/小时)", "时薪(元)", "工资", "薪资", "薪酬",
                 "pay"),
        "monthly_wage": ("monthly_wage", "月薪", "工资(元/月)", "薪资(元/月)", "月工资", "月薪(元)",
                         "monthly_salary"),
        "headcount": ("headcount", "招聘人数", "人数", "名额", "需求人数", "招聘数量"),
        "valid_from": ("valid_from", "开始日期", "发布日期", "有效期起", "起始日期", "生效日期",
                       "start_date"),
        "valid_until": ("valid_until", "截止日期", "结束日期", "有效期至", "有效期止", "失效日期",
                        "end_date"),
    },
    # Hotline (12345) exports, Open311 GeoReport v2 and city 311 exports (Boston, New York,
    # Chicago, San Francisco).
    "cases": {
        # Our case number (YYYY-NNNNNN), as an export writes it: matched first, whatever the
        # source, so that a re-imported export finds the app's own cases.
        "number": ("case_number", "事件编号", "number"),
        "source_id": ("service_request_id", "工单编号", "source_id", "case_enquiry_id",
                      "unique_key", "sr_number", "case_id", "caseid", "request_id", "工单号",
                      "案件编号", "编号", "id"),
        # Boston: type (the request type; reason and subject are coarser); New York:
        # complaint_type (descriptor is its detail); Open311: service_name before service_code.
        "category": ("service_name", "类别", "category", "complaint_type", "srtype", "sr_type",
                     "type", "request_type", "问题类型", "问题分类", "诉求分类", "事项分类",
                     "工单类型", "分类", "service_code"),
        "description": ("description", "问题描述", "诉求内容", "描述", "descriptor", "case_title",
                        "details", "request_details", "内容"),
        "lat": _LAT,
        "lon": _LON,
        "requested_at": ("requested_datetime", "受理时间", "requested_at", "open_dt",
                         "created_date", "opened", "open_date", "reported_at", "上报时间",
                         "来电时间", "登记时间", "创建时间", "反映时间"),
        # Closing times only: Open311's updated_datetime is any change (see updated_at).
        "closed_at": ("closed_datetime", "办结时间", "closed_at", "closed_dt", "closed_date",
                      "closed", "close_date", "结案时间", "关闭时间", "完成时间"),
        "updated_at": ("updated_datetime", "更新时间", "updated_at", "last_updated"),
        "status": ("status", "状态", "case_status", "工单状态", "办理状态", "处理状态"),
        # Boston's "location" is the street address; New York's (a point's text) loses to its
        # incident_address.
        "address": ("address", "地址", "incident_address", "street_address", "事发地址",
                    "诉求地址", "发生地址", "location"),
        "reporter_name": ("reporter_name", "来电人", "反映人", "诉求人", "联系人", "来电人姓名"),
        "reporter_phone": ("reporter_phone", "来电号码", "联系电话", "来电人电话", "诉求人电话"),
    },
    # Export only (importers.export): visits are recorded in the app, never imported, so
    # tables.REQUIRED and the loaders have no "visits"; the layout is here for write_xlsx.
    "visits": {
        "household": ("household_code", "户编号"),
        "visited_at": ("visited_at", "走访时间"),
        "worker": ("worker_code", "走访人工号"),
        "worker_name": ("worker_name", "走访人"),
        "mode": ("mode", "走访方式"),
        "night": ("night", "夜间走访"),
        "weekend": ("weekend", "周末走访"),
        "tasks": ("tasks", "完成任务"),
        "notes": ("notes", "走访记录"),
        "demands": ("demands", "居民诉求"),
        "warnings": ("warnings", "提示"),
        "recorded_at": ("recorded_at", "录入时间"),
        "recorded_by": ("recorded_by", "录入人"),
    },
}
# fmt: on
KINDS = tuple(FIELDS)

_DROP = re.compile(r"[\s_\-*:]+")
_SUFFIX = re.compile(r"[(\[][^()\[\]]*[)\]]$")


def normalise(header: str) -> str:
    """A header as compared: full-width forms made half-width (NFKC), case folded, without
    spaces, underscores, hyphens, ``*`` (a required mark of Chinese templates) and colons."""
    return _DROP.sub("", unicodedata.normalize("NFKC", header).casefold()).lstrip("\ufeff")


def _has_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" for ch in text)


def _index(kind: str) -> dict[str, tuple[str, int]]:
    index: dict[str, tuple[str, int]] = {}
    for name, spellings in FIELDS[kind].items():
        for rank, spelling in enumerate(spellings):
            key = normalise(spelling)
            if key in index and index[key][0] != name:
                raise AssertionError(f"{kind}: {spelling!r} spells {index[key][0]} and {name}")
            index.setdefault(key, (name, rank))
    return index


INDEX: dict[str, dict[str, tuple[str, int]]] = {kind: _index(kind) for kind in KINDS}


def recognise(kind: str, header: str) -> tuple[str, int] | None:
    """The canonical field a header spells and the spelling's rank (0 first), or None. A unit
    in brackets at the end (``工资(元/月)``, ``Latitude (WGS84)``) is dropped when the whole
    header is not itself a spelling."""
    key = normalise(header)
    if not key:
        return None
    found = INDEX[kind].get(key)
    if found is None:
        bare = _SUFFIX.sub("", key)
        if bare != key:
            found = INDEX[kind].get(bare)
    return found


def label(kind: str, name: str, *, chinese: bool = True) -> str:
    """The header an export writes: the field's first Chinese (or English) spelling."""
    spellings = FIELDS[kind][name]
    for spelling in spellings:
        if _has_cjk(spelling) == chinese:
            return spelling
    return spellings[0]
