"""The demo district: a seeded, realistic 静安区 grown around 天目西路街道, bulk-loaded with COPY.

Why it exists: every analysis (coverage, hotspots, matching, routes) and every map needs a city
to run on before real data is imported, and tests need the same city every time. So the demo is
deterministic (same ``households`` and ``seed``, same rows, ids and geometries, whatever day it
is loaded on) and believable: real division codes and names (``geo/data``), a street
grid with blocks, parcels and building footprints of real sizes, families with ages, relations,
ID numbers and special-group flags consistent with their class, workers of every role, and a
commercial street with its shops. The exceptions are the histories: six months of visits (version
3), two months of job matches (version 4) and twelve months of cases (version 6) end on the day it
is loaded (in the subdistrict's time zone), so coverage, overdue cases and hotspots "as of today"
mean something whenever the demo is loaded; the same seed on the same day gives the same rows.

The cases (version 6, see ``_load_v6_cases``): per 1,000 households a month, 12345 hotline calls
falling from 30 to 10 over the twelve months, grid workers' whistles rising from 10 to 32, online
reports from 3 to 6, and every demand a visit escalated; planted hotspots in each subdistrict
(``case_hotspots``): illegal parking in the middle of its commercial street, noise at its market,
mosquitoes in a garden compound (summer), vegetables on an old estate's green.

The shape of the city, from the top:

- Streets run on a lattice that is regular but not perfect: columns and rows of uneven width,
  north-south streets that jog a little at every crossing, arterials every few streets. The cell
  between four street centre lines is a *block cell*; the built block is the cell less half of
  each street around it.
- A block cell is cut (guillotine splits) into parcels that tile it exactly; each parcel is a
  micro-grid holding one building set back inside the block. A grid is a run of about three
  contiguous cells, a community a run of grids, a subdistrict a run of communities, all taken
  along one generalized Hilbert curve over the lattice, so every level is contiguous and compact
  and every level's geometry is exactly the union of the level below (all edges are axis
  aligned and share their coordinates, so unions are clean and ``ST_CoveredBy`` holds exactly).
- Areas reach the street centre lines, so a case reported on a street still falls in a grid;
  buildings (and so households) stay inside the blocks.

Scaling follows how a city grows: about 500 households per grid, one building per micro-grid and
about 16.7 households per building at every size; communities hold more grids as they grow (3 or
so at the default, up to 8–12); past ~60 grids a subdistrict splits and the real subdistricts of
静安区 with their real communities are used, the default one (天目西路街道) in the middle; past the
267 real communities, further ones get codes 201+ and a name marked 生成.

Loading is one transaction: COPY of text rows (geometries as hex EWKB) streamed from a generating
thread, with household and person indexes and foreign keys suspended during the copy and rebuilt
(and validated) at the end, the code-prefix triggers running as usual.
"""

from __future__ import annotations

import bisect
import calendar
import csv
import datetime as dt
import io
import itertools
import math
import queue
import random
import re
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg2
import shapely
from shapely.geometry import LineString, MultiPolygon, Polygon, box
from sqlalchemy.engine import make_url
from tqdm import tqdm

from geo import jobs, network
from geo import visits as geo_visits
from geo.errors import GridmapError
from geo.pii import Vault

DEMO_VERSION = 6

DATA = Path(__file__).with_name("data")
DISTRICT_CODE = "310106"
DISTRICT_NAME = "静安区"  # geo/data/SOURCE.md: the CSVs are cut from 静安区 (310106)
HOME_SUBDISTRICT = "310106015"  # 天目西路街道, the default demo
CENTRE_LON, CENTRE_LAT = 121.452, 31.248
SRID = 4326
# Ages, birth dates and move-in dates are as of this year, not today: the demo must not change
# with the day it is loaded on.
REF_YEAR = 2025

MAX_HOUSEHOLDS = 5_000_000  # as `gridmap demo --households` allows
HOUSEHOLDS_PER_GRID = 500
BUILDINGS_PER_HOUSEHOLD = 300 / 5000  # the default: 300 buildings for 5,000 households
BUILDINGS_PER_CELL = 10
# The default subdistrict covers 1.8 km² (天目西路街道's real area) in 30 block cells.
CELL_SIDE_M = math.sqrt(1_800_000 / 30)
GRIDS_PER_SUBDISTRICT = 60
MERCHANTS_PER_SUBDISTRICT = 100
COMMERCIAL_STREET_MAX_CELLS = 7  # about 1.7 km of shops
CHUNK_HOUSEHOLDS = 25_000  # households per COPY statement

# Tables the demo fills, parents first.
TABLES = (
    "district",
    "subdistrict",
    "community",
    "grid",
    "micro_grid",
    "building",
    "household",
    "person",
    "worker",
    "worker_grid",
    "merchant",
    "visit",
    "demand",
    "talent",
    "cadence_policy",
    # Version 4's (JOB_TABLES).
    "job_opening",
    "job_seeker",
    "offer",
    "job_match",
    "job_match_event",
    # Version 5's.
    "walk_edge",
    "walk_entrance",
    # Version 6's (CASE_TABLES; the catalogue, units and holidays are reference data the
    # migration seeds and the grid center keeps: never the demo's, never emptied by a reset).
    "grid_case",
    "case_event",
    "case_counter",
)
# Large tables whose secondary indexes and foreign keys are rebuilt after the copy.
BULK_TABLES = ("household", "person")


class DemoError(GridmapError):
    """The demo cannot be loaded here as asked; the message says why and what to do."""

    code = "DEMO_CONFLICT"


@dataclass
class DemoSummary:
    """What ``load_demo`` did, for people (``str()``) and machines (``dataclasses.asdict``)."""

    status: str  # "loaded", "reloaded", "upgraded" or "current"
    version: int
    households: int
    seed: int
    counts: dict[str, int]
    seconds: float
    stages: dict[str, float] = field(default_factory=dict)
    message: str = ""

    def __str__(self) -> str:
        counts = ", ".join(f"{n:,} {t}" for t, n in self.counts.items())
        return f"{self.message} ({counts}; {self.seconds:.1f} s)"


# --------------------------------------------------------------------------------------------
# Names and numbers
# --------------------------------------------------------------------------------------------


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Common surnames, roughly most frequent first (Shanghai's 沈, 陆, 顾, 徐 ranked up).
SURNAMES = _words(
    "王 张 陈 李 刘 徐 朱 周 沈 陆 顾 吴 杨 黄 孙 胡 金 钱 姚 蒋 俞 潘 汪 施 许 赵 马 郭 何 高 林 "
    "郑 唐 曹 范 方 严 袁 毛 丁 邱 戴 倪 夏 龚 邵 程 宋 谢 韩 冯 董 叶 杜 魏 吕 任 姜 蔡 彭 卢 殷 "
    "秦 葛 薛 江 储 邹 尤 奚 盛 瞿 缪 费 庄 贝 屠 翁 卞 须"
)
_SURNAME_CUM: list[float] = []
_acc = 0.0
for _rank in range(len(SURNAMES)):
    _acc += 1.0 / (_rank + 6)
    _SURNAME_CUM.append(_acc)

# Given names by birth cohort and gender: what a 1940s, a 1970s, a 1990s and a 2010s child was
# called. Keys: (cohort, gender).
_GIVEN = {
    ("old", "M"): (
        "建国 国庆 国华 德明 志明 福根 金生 根宝 永康 志刚 家明 宝林 文忠 明德 兴华 长根 荣生 "
        "正德 关林 仁杰 士杰 宝根 庆华 金福 德华 振华 鸿 耀 福生 顺发"
    ),
    ("old", "F"): (
        "秀英 桂英 玉兰 凤英 秀珍 月娥 金娣 翠英 素珍 美娟 佩芬 雅琴 惠珍 玉珍 宝珠 兰英 梅芳 "
        "丽华 淑贞 彩娣 凤仙 巧英 根娣 杏芬 雪英 爱珍 琴芳 佩华 菊英 阿娣"
    ),
    ("mid", "M"): (
        "卫东 建华 伟 军 勇 强 斌 杰 志强 海 国强 建平 伟民 小龙 忠 卫国 明 刚 平 宏 峰 建军 文斌 "
        "晓东 立新 海涛 红兵 永刚 国平 伟国"
    ),
    ("mid", "F"): (
        "红 丽 敏 静 燕 海燕 丽华 红梅 晓红 建英 玲 萍 霞 丽萍 美华 慧 芳 琴 卫红 晓燕 雪芳 秀华 "
        "丽娟 春燕 红霞 凤 英 蓉 莉 文英"
    ),
    ("young", "M"): (
        "磊 杰 洋 俊 浩 涛 鹏 晨 俊杰 超 毅 斌 宇 昊 骏 炜 佳伟 晓峰 文杰 成 亮 鑫 俊辉 天 逸 辰 "
        "宏伟 晓明 志伟 嘉诚"
    ),
    ("young", "F"): (
        "婷 晶 佳 雪 倩 颖 洁 琳 丹 婷婷 晓婷 佳怡 雯 蕾 慧敏 诗韵 思佳 艳 娜 悦 璐 嘉敏 晓雯 怡 "
        "瑾 佳琪 文静 瑶 菁 雅婷"
    ),
    ("new", "M"): (
        "子涵 浩然 宇轩 梓豪 一鸣 俊熙 天佑 思远 沐宸 子墨 浩宇 奕辰 皓轩 睿 铭泽 嘉懿 宇航 子轩 "
        "博文 亦凡 晨阳 锦程 明轩 梓睿 泽宇 书恒 乐天 景行 承泽 一航"
    ),
    ("new", "F"): (
        "欣怡 梓涵 雨桐 子萱 诗涵 一诺 可馨 梓萱 紫涵 语嫣 思彤 佳怡 雨欣 若汐 梦瑶 可欣 芷若 "
        "安琪 晨曦 依诺 沐晴 语桐 心怡 思琪 欣妍 昕悦 雅琪 梓晴 诗琪 悦"
    ),
}
GIVEN_NAMES = {key: _words(value) for key, value in _GIVEN.items()}
# Given-name characters of each cohort, to make names beyond the lists (first + last char).
_GIVEN_CHARS = {
    key: ("".join(n[0] for n in names), "".join(n[-1] for n in names))
    for key, names in GIVEN_NAMES.items()
}


def _cohort(birth_year: int) -> str:
    if birth_year < 1955:
        return "old"
    if birth_year < 1980:
        return "mid"
    if birth_year < 2000:
        return "young"
    return "new"


_COHORT_OF_YEAR = {y: _cohort(y) for y in range(1880, 2201)}

PHONE_PREFIXES = _words(
    "130 131 132 133 135 136 137 138 139 150 151 152 153 155 156 157 158 159 166 173 177 180 181 "
    "182 183 185 186 187 188 189 191 198 199"
)

# ISO 7064 MOD 11-2 (GB 11643): weights of the 17 digits and the check character by remainder.
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """The 18th character of a PRC resident ID number (GB 11643, ISO 7064 MOD 11-2)."""
    return ID_CHECK[sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


# Unified social credit code (GB 32100): 18 characters over this alphabet; the organization code
# (characters 9-17) carries its own GB 11714 check character.
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def uscc_check(first17: str) -> str:
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def _org_check(first8: str) -> str:
    total = sum(int(c, 36) * w for c, w in zip(first8, ORG_WEIGHTS, strict=True))
    value = 11 - total % 11
    return "X" if value == 10 else "0" if value == 11 else str(value)


# Roads: north-south ones after provinces, east-west ones after cities, as in old Shanghai.
NS_ROADS = _words(
    "西藏 浙江 福建 山西 河南 四川 江西 湖北 湖南 山东 陕西 甘肃 青海 新疆 云南 贵州 广西 安徽 "
    "江苏 河北 辽宁 黑龙江 内蒙古 宁夏 海南 吉林"
)
EW_ROADS = _words(
    "北京 南京 天津 九江 汉口 福州 广东 宁波 厦门 苏州 杭州 温州 嘉兴 湖州 绍兴 金华 衢州 常州 "
    "镇江 扬州 泰州 南通 淮安 徐州 合肥 芜湖 安庆 洛阳 开封 长沙 岳阳 衡阳 桂林 昆明 大理 贵阳 "
    "遵义 成都 西安 延安 兰州 太原 大同 运城 济南 青岛 烟台 沈阳 大连 长春 南宁 海口 汕头 珠海 "
    "佛山 中山 江门 泉州 漳州 赣州"
)
# Each subdistrict's shopping street: mostly the road it is named after.
COMMERCIAL_STREETS = {
    "310106006": "江宁路",
    "310106011": "石门二路",
    "310106012": "南京西路",
    "310106013": "愚园路",
    "310106014": "万航渡路",
    "310106015": "天目西路",
    "310106016": "浙江北路",
    "310106017": "宝山路",
    "310106018": "共和新路",
    "310106019": "大宁路",
    "310106020": "闻喜路",
    "310106021": "临汾路",
    "310106022": "芷江西路",
    "310106101": "共康路",
}
_COMPOUND_CHARS = "福康德庆华安宁兴瑞祥和平永宝丰恒泰嘉荣明新春云锦静怡林松梅兰桂椿馨悦景翠"
_COMPOUND_SUFFIX = {
    "lane": ("里", "坊", "邨"),
    "village": ("新村", "小区", "新村"),
    "tower": ("花园", "苑", "公寓"),
    "garden": ("别墅", "花园", "园"),
}

MERCHANT_CATEGORIES = {
    # category: (weight, name endings, employees range)
    "餐饮": (
        28,
        _words("面馆 小吃 饭店 馄饨铺 生煎馆 茶餐厅 川菜馆 本帮菜馆 烧腊 包子铺"),
        (2, 15),
    ),
    "便利店": (10, _words("便利店 烟杂店 便民超市"), (1, 4)),
    "理发": (8, _words("理发店 美发 发艺 造型"), (1, 6)),
    "药店": (5, _words("大药房 药房 医药"), (2, 8)),
    "家政": (6, _words("家政服务 保洁 月嫂中心"), (3, 20)),
    "维修": (6, _words("家电维修 修鞋配钥匙 手机维修 五金维修"), (1, 4)),
    "超市": (4, _words("超市 生鲜超市 菜场"), (5, 30)),
    "快递": (5, _words("快递驿站 快递服务点"), (2, 10)),
    "洗衣": (4, _words("洗衣店 干洗 洗衣坊"), (1, 4)),
    "培训": (6, _words("教育 培训中心 书画培训 少儿英语"), (3, 20)),
    "水果": (8, _words("水果店 果品"), (1, 4)),
    "服装": (6, _words("服饰 裁缝铺 成衣店"), (1, 5)),
    "五金": (4, _words("五金店 建材 灯具"), (1, 4)),
}
_MERCHANT_BRANDS = _words(
    "鑫隆 佳美 福顺 好邻居 益丰 康宁 华联 快客 恒丰 瑞丰 金福 永和 百家 乐家 安心 邻里 诚信 新新 "
    "大众 天天 红旗 光明 吉祥 万家 如意 兴旺 和美 春风"
)

# Department units that cases are dispatched to.
DEPARTMENT_UNITS = (
    ("U-HOUSING", "房管办"),
    ("U-URBAN", "城管中队"),
    ("U-SANITATION", "市容环卫所"),
    ("U-MARKET", "市场监管所"),
    ("U-UTILITY", "水电燃气服务站"),
    ("U-CIVIL", "社区事务受理中心"),
)
# Staff number: JA<subdistrict's last 3 digits>-<role tag>-<4 digits>, e.g. JA015-GC-0001.
WORKER_TAGS = {
    "GRID_CENTER": "GC",
    "COMMUNITY": "SQ",
    "GRID_WORKER": "WG",
    "MICRO_GRID_LEADER": "WL",
    "DEPARTMENT": "BM",
}


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------

_UUID_MASK = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)
_UUID_V4 = (0x4 << 76) | (0x2 << 62)


def _uuid(rng: random.Random) -> str:
    """``str(uuid.UUID(int=rng.getrandbits(128), version=4))``, three times faster."""
    h = "%032x" % ((rng.getrandbits(128) & _UUID_MASK) | _UUID_V4)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _rng(seed: int, stream: str) -> random.Random:
    # Seeding from a str hashes it (SHA-512): stable across Python versions and platforms.
    return random.Random(f"gridmap-demo:{seed}:{stream}")


def _pick(r: Callable[[], float], items: Sequence[Any]) -> Any:
    # random.choice's algorithm is not promised to stay the same; this is.
    return items[int(r() * len(items))]


def _between(r: Callable[[], float], low: float, high: float) -> float:
    return low + (high - low) * r()


def _int_between(r: Callable[[], float], low: int, high: int) -> int:
    """An integer in [low, high]."""
    return low + int(r() * (high - low + 1))


def _split_even(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Integers proportional to ``weights`` that sum to ``total`` (largest remainder)."""
    wsum = sum(weights)
    if wsum <= 0:
        return _split_even(total, len(weights))
    shares = [total * w / wsum for w in weights]
    out = [int(s) for s in shares]
    rest = total - sum(out)
    order = sorted(range(len(weights)), key=lambda i: (out[i] - shares[i], i))
    for i in order[:rest]:
        out[i] += 1
    return out


_MX, _MY = network.metres_per_degree(CENTRE_LAT)
_KX, _KY = 1.0 / _MX, 1.0 / _MY
_POINT = struct.Struct("<BIIdd").pack
_EWKB_POINT = 0x20000001  # wkbPoint with the SRID flag


def _point_hex(x: float, y: float) -> str:
    """Hex EWKB of the point at local metres (x, y)."""
    return _POINT(1, _EWKB_POINT, SRID, CENTRE_LON + x * _KX, CENTRE_LAT + y * _KY).hex()


def _to_degrees(coords: Any) -> Any:
    # shapely.transform hands over an (n, 2) array; the same formula as _point_hex.
    return coords * (_KX, _KY) + (CENTRE_LON, CENTRE_LAT)


def _hex(geoms: Sequence[Any]) -> list[str]:
    """Hex EWKB (SRID 4326) of shapely geometries in local metres."""
    if not geoms:
        return []
    converted = shapely.transform(list(geoms), _to_degrees)
    return list(shapely.to_wkb(shapely.set_srid(converted, SRID), hex=True, include_srid=True))


def _multi(geom: Any) -> MultiPolygon:
    if isinstance(geom, MultiPolygon):
        return geom
    if isinstance(geom, Polygon):
        return MultiPolygon([geom])
    raise ValueError(f"expected an area, got {geom.geom_type}")


def _short(name: str) -> str:
    for suffix in ("居民委员会", "居委会", "村民委员会", "村委会", "街道", "镇"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


# --------------------------------------------------------------------------------------------
# The real division codes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Division:
    code: str
    name: str


def _read_divisions() -> tuple[list[_Division], dict[str, list[_Division]]]:
    with (DATA / "jingan_subdistricts.csv").open(encoding="utf-8") as f:
        subdistricts = [_Division(row["code"], row["name"]) for row in csv.DictReader(f)]
    communities: dict[str, list[_Division]] = {s.code: [] for s in subdistricts}
    with (DATA / "jingan_communities.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            communities[row["streetCode"]].append(_Division(row["code"], row["name"]))
    for rows in communities.values():
        rows.sort(key=lambda d: d.code)
    # The default subdistrict first: it is the one a one-subdistrict demo shows.
    subdistricts.sort(key=lambda d: (d.code != HOME_SUBDISTRICT, d.code))
    return subdistricts, communities


# --------------------------------------------------------------------------------------------
# The plan: a city in local metres (x east, y north, origin at the centre)
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Subdistrict:
    code: str
    name: str
    id: str = ""
    grids: list[_Grid] = field(default_factory=list)
    communities: list[_Community] = field(default_factory=list)
    street: str = ""
    geom: Any = None


@dataclass(eq=False)
class _Community:
    subdistrict: _Subdistrict
    grids: list[_Grid]
    code: str = ""
    name: str = ""
    id: str = ""
    office: tuple[float, float] = (0.0, 0.0)
    geom: Any = None


@dataclass(eq=False)
class _Grid:
    index: int
    cells: list[_Cell]
    community: _Community | None = None
    code: str = ""
    name: str = ""
    id: str = ""
    buildings: list[_Building] = field(default_factory=list)
    households: int = 0
    hot: bool = False  # many residents seeking work here
    geom: Any = None

    @property
    def centre(self) -> tuple[float, float]:
        n = len(self.cells)
        return (sum(c.cx for c in self.cells) / n, sum(c.cy for c in self.cells) / n)


@dataclass(eq=False)
class _Cell:
    col: int
    row: int  # 0 = the southernmost row
    x0: float
    x1: float
    y0: float
    y1: float
    bx0: float = 0.0  # the block: the cell less half of each street
    bx1: float = 0.0
    by0: float = 0.0
    by1: float = 0.0
    grid: _Grid | None = None
    character: str = "village"
    front: int = 0  # +1: the commercial street runs along its north edge, -1: south edge
    compound: str = ""
    road: str = ""
    lane: int = 0
    n_buildings: int = 0

    @property
    def cx(self) -> float:
        return (self.x0 + self.x1) / 2

    @property
    def cy(self) -> float:
        return (self.y0 + self.y1) / 2


@dataclass(eq=False)
class _Building:
    cell: _Cell
    parcel: tuple[float, float, float, float]  # x0, x1, y0, y1
    kind: str
    frontage: bool = False
    households: int = 0
    levels: int = 1
    units: int = 1
    rooms: int = 1  # per floor and unit
    first_floor: int = 1  # the lowest floor with flats (shops below)
    length: float = 10.0
    depth: float = 10.0
    angle: float = 0.0  # radians, counter-clockwise from east, of the long axis
    cx: float = 0.0
    cy: float = 0.0
    code: str = ""
    micro_code: str = ""
    id: str = ""
    micro_id: str = ""
    name: str = ""
    address: str = ""

    def local_to_xy(self, a: float, c: float) -> tuple[float, float]:
        """Metres along (a) and across (c) the long axis from the centre to city metres."""
        ca, sa = math.cos(self.angle), math.sin(self.angle)
        return self.cx + a * ca - c * sa, self.cy + a * sa + c * ca

    def footprint(self) -> Polygon:
        a, c = self.length / 2, self.depth / 2
        return Polygon([self.local_to_xy(*p) for p in ((-a, -c), (a, -c), (a, c), (-a, c))])


@dataclass
class _Plan:
    households: int
    seed: int
    subdistricts: list[_Subdistrict]
    grids: list[_Grid]  # in code order
    buildings: list[_Building]  # in code order
    cells: list[_Cell]


def _shape(households: int) -> tuple[int, int, int, int]:
    """Grids, buildings, block cells and subdistricts for this many households."""
    grids = max(1, round(households / HOUSEHOLDS_PER_GRID))
    buildings = max(grids, round(households * BUILDINGS_PER_HOUSEHOLD))
    cells = max(grids, round(buildings / BUILDINGS_PER_CELL))
    subdistricts = min(14, math.ceil(grids / GRIDS_PER_SUBDISTRICT))
    return grids, buildings, cells, subdistricts


def _communities_for(grids: int, real: int) -> int:
    """How many communities share a subdistrict's grids: 3 or so while small, up to 8 grids each,
    then up to 12 each before more than the real communities are needed."""
    wanted = max(min(3, grids), math.ceil(grids / 8))
    if wanted > real:
        wanted = max(real, math.ceil(grids / 12))
    return max(1, wanted)


def _gilbert(width: int, height: int) -> list[tuple[int, int]]:
    """A generalized Hilbert curve through every cell of a width x height lattice (J. Červený's
    gilbert2d): consecutive cells are neighbours, so any run of it is contiguous and compact."""
    out: list[tuple[int, int]] = []

    def sgn(v: int) -> int:
        return (v > 0) - (v < 0)

    def gen(x: int, y: int, ax: int, ay: int, bx: int, by: int) -> None:
        w, h = abs(ax + ay), abs(bx + by)
        dax, day, dbx, dby = sgn(ax), sgn(ay), sgn(bx), sgn(by)
        if h == 1:
            for _ in range(w):
                out.append((x, y))
                x, y = x + dax, y + day
            return
        if w == 1:
            for _ in range(h):
                out.append((x, y))
                x, y = x + dbx, y + dby
            return
        ax2, ay2, bx2, by2 = ax // 2, ay // 2, bx // 2, by // 2
        w2, h2 = abs(ax2 + ay2), abs(bx2 + by2)
        if 2 * w > 3 * h:
            if w2 % 2 and w > 2:
                ax2, ay2 = ax2 + dax, ay2 + day
            gen(x, y, ax2, ay2, bx, by)
            gen(x + ax2, y + ay2, ax - ax2, ay - ay2, bx, by)
        else:
            if h2 % 2 and h > 2:
                bx2, by2 = bx2 + dbx, by2 + dby
            gen(x, y, bx2, by2, ax2, ay2)
            gen(x + bx2, y + by2, ax, ay, bx - bx2, by - by2)
            gen(
                x + (ax - dax) + (bx2 - dbx),
                y + (ay - day) + (by2 - dby),
                -bx2,
                -by2,
                -(ax - ax2),
                -(ay - ay2),
            )

    if width >= height:
        gen(0, 0, width, 0, 0, height)
    else:
        gen(0, 0, 0, height, width, 0)
    return out


def _lattice(cells: int) -> tuple[int, int, list[tuple[int, int]]]:
    """Columns, rows and the curve's order of ``cells`` block cells, a little wider than tall."""
    best = None
    rows0 = max(1, round(math.sqrt(cells / 1.2)))
    for rows in sorted(range(max(1, rows0 - 3), rows0 + 4), key=lambda r: abs(r - rows0)):
        cols = math.ceil(cells / rows)
        path = _gilbert(cols, rows)
        drop = cols * rows - cells
        # Drop the spare cells at both ends of the curve (two corners of one side).
        path = path[(drop + 1) // 2 : len(path) - drop // 2]
        if all(abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1 for a, b in itertools.pairwise(path)):
            return cols, rows, path
        best = best or (cols, rows, path)
    assert best is not None
    return best


def _chunks(items: Sequence[Any], parts: int) -> list[list[Any]]:
    n = len(items)
    return [list(items[i * n // parts : (i + 1) * n // parts]) for i in range(parts)]


def _reading_order(side: float) -> Callable[[tuple[float, float]], tuple[int, float]]:
    """Sort key of a point: rows of ``side`` metres from north to south, west to east in a row."""
    return lambda p: (-round(p[1] / side), p[0])


def _plan(households: int, seed: int) -> _Plan:
    r = _rng(seed, "layout").random
    n_grids, n_buildings, n_cells, n_subs = _shape(households)
    side = CELL_SIDE_M
    cols, rows, path = _lattice(n_cells)

    # Streets: uneven column widths and row heights, north-south streets jogging per row.
    widths = [_between(r, 0.82, 1.18) for _ in range(cols)]
    heights = [_between(r, 0.82, 1.18) for _ in range(rows)]
    xs = [0.0]
    for w in widths:
        xs.append(xs[-1] + w * side * cols / sum(widths))
    ys = [0.0]
    for h in heights:
        ys.append(ys[-1] + h * side * rows / sum(heights))
    x_mid, y_mid = xs[-1] / 2, ys[-1] / 2
    xs = [round(x - x_mid, 1) for x in xs]
    ys = [round(y - y_mid, 1) for y in ys]
    jog = [
        [round(xs[i] + _between(r, -0.07, 0.07) * side, 1) for _ in range(rows)]
        for i in range(cols + 1)
    ]
    # Half widths: arterials (30-36 m) every fourth street, the others 12-20 m.
    half_ns = [_between(r, 15, 18) if i % 4 == 2 else _between(r, 6, 10) for i in range(cols + 1)]
    half_ew = [_between(r, 15, 18) if j % 4 == 2 else _between(r, 6, 10) for j in range(rows + 1)]
    grid_of: dict[tuple[int, int], _Cell] = {}
    cells: list[_Cell] = []
    for col, row in path:
        cell = _Cell(col, row, jog[col][row], jog[col + 1][row], ys[row], ys[row + 1])
        grid_of[(col, row)] = cell
        cells.append(cell)

    # Grids, subdistricts and communities: consecutive runs along the curve.
    grids = [_Grid(i, chunk) for i, chunk in enumerate(_chunks(cells, n_grids))]
    for grid in grids:
        for cell in grid.cells:
            cell.grid = grid
    real_subs, real_communities = _read_divisions()
    sub_chunks = _chunks(grids, n_subs)
    home = min(cells, key=lambda c: (c.cx**2 + c.cy**2, c.col, c.row)).grid
    home_index = next(i for i, chunk in enumerate(sub_chunks) if home in chunk)
    order = sorted(
        (i for i in range(n_subs) if i != home_index),
        key=lambda i: _reading_order(side * 4)(_centre(sub_chunks[i])),
    )
    subdistricts: list[_Subdistrict] = [None] * n_subs  # type: ignore[list-item]
    for division, i in zip(real_subs, [home_index, *order], strict=False):
        subdistricts[i] = _Subdistrict(division.code, division.name, grids=sub_chunks[i])
    for sub in subdistricts:
        real = real_communities[sub.code]
        n = _communities_for(len(sub.grids), len(real))
        comms = [_Community(sub, chunk) for chunk in _chunks(sub.grids, n)]
        comms.sort(key=lambda c: _reading_order(side * 2)(_centre(c.grids)))
        taken = {c.code[-3:] for c in real}  # generated numbers from 201, clear of real ones
        spare = (n for n in range(201, 1000) if f"{n:03d}" not in taken)
        for k, comm in enumerate(comms):
            if k < len(real):
                comm.code, comm.name = real[k].code, real[k].name
            else:
                number = next(spare)
                comm.code = f"{sub.code}{number:03d}"
                comm.name = f"{_short(sub.name)}第{number}居委会（生成）"
            for grid in comm.grids:
                grid.community = comm
            comm.grids.sort(key=lambda g: _reading_order(side)(g.centre))
            for j, grid in enumerate(comm.grids, start=1):
                grid.code = f"{comm.code}{j:03d}"
                grid.name = f"{_short(comm.name)}第{j}网格"
        sub.communities = comms
    subdistricts.sort(key=lambda s: s.code)
    grids = [g for sub in subdistricts for comm in sub.communities for g in comm.grids]

    # Commercial streets, then the blocks (their streets' widths known).
    for sub in subdistricts:
        _commercial_street(sub, grid_of, ys, half_ew, rows, r)
    for cell in cells:
        cell.bx0 = cell.x0 + half_ns[cell.col]
        cell.bx1 = cell.x1 - half_ns[cell.col + 1]
        cell.by0 = cell.y0 + half_ew[cell.row]
        cell.by1 = cell.y1 - half_ew[cell.row + 1]

    # Buildings per grid, then per cell by block area (each cell gets at least one, so each grid
    # is exactly the union of its micro-grids).
    extra = _split_even(n_buildings - n_cells, n_grids)
    # A few hundred households per grid, not all the same.
    targets = _apportion(households, [_between(r, 0.8, 1.2) for _ in range(n_grids)])
    for g, grid in enumerate(sorted(grids, key=lambda g: g.index)):
        areas = [(c.bx1 - c.bx0) * (c.by1 - c.by0) for c in grid.cells]
        for cell, n in zip(grid.cells, _apportion(extra[g], areas), strict=True):
            cell.n_buildings = 1 + n
        grid.households = targets[g]
    names_taken: set[str] = set()
    for cell in cells:
        cell.character = _weighted(
            r, (("lane", 0.33), ("village", 0.45), ("tower", 0.12), ("garden", 0.10))
        )
        cell.compound = _compound_name(r, cell.character, names_taken)
        cell.lane = 50 + 16 * cell.col + (cell.row % 2)
    for cell in cells:
        if cell.front:
            cell.road = cell.grid.community.subdistrict.street  # type: ignore[union-attr]
        else:
            road = EW_ROADS[cell.row % len(EW_ROADS)]
            cell.road = road + ("路" if cell.row < len(EW_ROADS) else "支路")
    for grid in sorted(grids, key=lambda g: g.index):
        _plan_grid(grid, r)

    # Codes: micro-grids numbered in reading order inside their grid.
    ids = _rng(seed, "ids")
    buildings: list[_Building] = []
    for sub in subdistricts:
        sub.id = _uuid(ids)
        for comm in sub.communities:
            comm.id = _uuid(ids)
            comm.office = _office(comm)
            for grid in comm.grids:
                grid.id = _uuid(ids)
                grid.buildings.sort(
                    key=lambda b: (-b.cell.row, b.cell.col, -round(b.cy / 40), b.cx)
                )
                for k, b in enumerate(grid.buildings, start=1):
                    b.micro_code = f"{grid.code}{k:03d}"
                    b.code = f"{b.micro_code}001"
                    b.micro_id = _uuid(ids)
                    b.id = _uuid(ids)
                    buildings.append(b)
    _name_buildings(cells)
    return _Plan(households, seed, subdistricts, grids, buildings, cells)


def _centre(grids: Sequence[_Grid]) -> tuple[float, float]:
    cells = [c for g in grids for c in g.cells]
    return (sum(c.cx for c in cells) / len(cells), sum(c.cy for c in cells) / len(cells))


def _weighted(r: Callable[[], float], options: Sequence[tuple[Any, float]]) -> Any:
    x = r() * sum(w for _, w in options)
    for value, weight in options:
        x -= weight
        if x < 0:
            return value
    return options[-1][0]


def _compound_name(r: Callable[[], float], character: str, taken: set[str]) -> str:
    for _ in range(50):
        name = (
            _pick(r, _COMPOUND_CHARS)
            + _pick(r, _COMPOUND_CHARS)
            + _pick(r, _COMPOUND_SUFFIX[character])
        )
        if name not in taken and name[0] != name[1]:
            break
    taken.add(name)
    return name


def _commercial_street(
    sub: _Subdistrict,
    grid_of: dict[tuple[int, int], _Cell],
    ys: list[float],
    half_ew: list[float],
    rows: int,
    r: Callable[[], float],
) -> None:
    """Pick the east-west street of ``sub`` with the longest run of its blocks along it, near its
    middle, and mark up to ~1.7 km of blocks on both sides as the commercial street's frontage."""
    mine = {(c.col, c.row) for g in sub.grids for c in g.cells}
    cy = _centre(sub.grids)[1]
    best: tuple[float, int, list[int]] | None = None
    for line in range(rows + 1):
        cols = sorted({col for col, row in mine if row in (line - 1, line)})
        runs: list[list[int]] = []
        for col in cols:
            if runs and runs[-1][-1] == col - 1:
                runs[-1].append(col)
            else:
                runs.append([col])
        for run in runs:
            both = sum(((c, line - 1) in mine) + ((c, line) in mine) for c in run)
            score = min(len(run), COMMERCIAL_STREET_MAX_CELLS) * 2 + min(both, 14) * 0.5
            score -= abs(ys[line] - cy) / CELL_SIDE_M
            if best is None or score > best[0]:
                best = (score, line, run)
    assert best is not None
    _, line, run = best
    if len(run) > COMMERCIAL_STREET_MAX_CELLS:
        start = (len(run) - COMMERCIAL_STREET_MAX_CELLS) // 2
        run = run[start : start + COMMERCIAL_STREET_MAX_CELLS]
    half_ew[line] = _between(r, 9, 11)  # a 18-22 m shopping street
    for col in run:
        south, north = grid_of.get((col, line - 1)), grid_of.get((col, line))
        if south is not None and (col, line - 1) in mine:
            south.front = 1
        if north is not None and (col, line) in mine:
            north.front = -1
    sub.street = COMMERCIAL_STREETS.get(sub.code, f"{_short(sub.name)}路")


# Building kinds: levels, unit length (m), most units, rooms per floor and unit, depth (m),
# lowest floor with flats, and the kind to grow into when this one cannot hold the households.
_KINDS: dict[
    str,
    tuple[
        tuple[int, int],
        tuple[float, float],
        int,
        tuple[int, int],
        tuple[float, float],
        int,
        str | None,
    ],
] = {
    "garden": ((2, 3), (12.0, 16.0), 1, (1, 3), (10.0, 14.0), 1, "lane"),
    "lane": ((2, 3), (8.0, 11.0), 6, (1, 2), (10.0, 13.0), 1, "village"),
    "village": ((5, 7), (12.0, 15.0), 5, (2, 3), (10.0, 13.0), 1, "tower"),
    "shop": ((3, 6), (12.0, 16.0), 6, (1, 3), (12.0, 15.0), 2, "tower"),
    "tower": ((8, 60), (22.0, 30.0), 2, (4, 8), (18.0, 26.0), 1, None),
}
# Relative households of a building of each kind, before scaling to the grid's households.
_KIND_HOUSEHOLDS = {
    "garden": (1.0, 6.0),
    "lane": (4.0, 16.0),
    "village": (14.0, 48.0),
    "shop": (8.0, 30.0),
    "tower": (50.0, 140.0),
}
# Lot size each kind asks for, relative.
_KIND_LOT = {"garden": 0.8, "lane": 0.9, "village": 1.2, "shop": 1.0, "tower": 1.5}


def _guillotine(
    rect: tuple[float, float, float, float],
    weights: Sequence[float],
    r: Callable[[], float],
    out: list[tuple[float, float, float, float]],
) -> None:
    """Cut ``rect`` into ``len(weights)`` rectangles of about those relative areas that tile it."""
    x0, x1, y0, y1 = rect
    n = len(weights)
    if n == 1:
        out.append(rect)
        return
    k = n // 2
    frac = sum(weights[:k]) / sum(weights) * _between(r, 0.92, 1.08)
    frac = min(max(frac, 0.2), 0.8)
    if x1 - x0 >= y1 - y0:
        xs = round(x0 + (x1 - x0) * frac, 1)
        _guillotine((x0, xs, y0, y1), weights[:k], r, out)
        _guillotine((xs, x1, y0, y1), weights[k:], r, out)
    else:
        ys = round(y0 + (y1 - y0) * frac, 1)
        _guillotine((x0, x1, ys, y1), weights[:k], r, out)
        _guillotine((x0, x1, y0, ys), weights[k:], r, out)


def _plan_grid(grid: _Grid, r: Callable[[], float]) -> None:
    """Parcels, buildings and their households for one grid."""
    buildings: list[_Building] = []
    for cell in grid.cells:
        block = (cell.bx0, cell.bx1, cell.by0, cell.by1)
        n = cell.n_buildings
        frontage: list[tuple[float, float, float, float]] = []
        if cell.front and n >= 2:
            depth = round(_between(r, 26, 32), 1)
            f = max(1, min(n - 1, round((cell.bx1 - cell.bx0) / 48)))
            if cell.front > 0:
                strip, rest = (
                    (cell.bx0, cell.bx1, cell.by1 - depth, cell.by1),
                    (cell.bx0, cell.bx1, cell.by0, cell.by1 - depth),
                )
            else:
                strip, rest = (
                    (cell.bx0, cell.bx1, cell.by0, cell.by0 + depth),
                    (cell.bx0, cell.bx1, cell.by0 + depth, cell.by1),
                )
            _guillotine(strip, [1.0] * f, r, frontage)
            block, n = rest, n - f
        kinds = [cell.character] * n
        parcels: list[tuple[float, float, float, float]] = []
        _guillotine(block, [_KIND_LOT[k] * _between(r, 0.8, 1.2) for k in kinds], r, parcels)
        for kind, parcels_of in (("shop", frontage), (None, parcels)):
            for p in parcels_of:
                # Parcels on the block's edge reach the street centre line.
                parcel = (
                    cell.x0 if p[0] == cell.bx0 else p[0],
                    cell.x1 if p[1] == cell.bx1 else p[1],
                    cell.y0 if p[2] == cell.by0 else p[2],
                    cell.y1 if p[3] == cell.by1 else p[3],
                )
                buildings.append(
                    _Building(cell, parcel, kind or cell.character, frontage=kind == "shop")
                )
    weights = [_between(r, *_KIND_HOUSEHOLDS[b.kind]) for b in buildings]
    for b, h in zip(buildings, _apportion(grid.households, weights), strict=True):
        b.households = h
        _configure(b, r)
    grid.buildings = buildings


def _configure(b: _Building, r: Callable[[], float]) -> None:
    """Kind, levels, units and rooms that hold the building's households, and a footprint of
    believable size that fits its parcel (set back inside the block)."""
    cell = b.cell
    setback = _between(r, 3.0, 6.0)
    ux0 = max(b.parcel[0], cell.bx0) + setback
    ux1 = min(b.parcel[1], cell.bx1) - setback
    uy0 = max(b.parcel[2], cell.by0) + setback
    uy1 = min(b.parcel[3], cell.by1) - setback
    if b.frontage:
        # Shops open onto the street: 3 m from the block's edge, facing it squarely.
        if cell.front > 0:
            uy1 = cell.by1 - 3.0
        else:
            uy0 = cell.by0 + 3.0
    span_x, span_y = ux1 - ux0, uy1 - uy0
    along_x = b.frontage or span_x >= 0.7 * span_y  # slabs face south when they can
    along, across = (span_x, span_y) if along_x else (span_y, span_x)
    max_len, max_depth = min(along - 1.0, 80.0), across - 1.0
    occupancy = _between(r, 0.78, 0.98)
    need = max(1, math.ceil(b.households / occupancy))
    kind: str | None = b.kind
    while kind is not None:
        levels_r, unit_r, max_units, rooms_r, depth_r, first, bigger = _KINDS[kind]
        depth = min(_between(r, *depth_r), max_depth)
        unit_len = _between(r, *unit_r)
        rooms = _int_between(r, *rooms_r)
        if kind == "tower":
            units = 2 if need > 8 * 33 and max_len >= 2 * unit_r[0] else 1
            unit_len = min(unit_len, max_len / units)
            if need < 60:  # a mid-rise (小高层) rather than an empty tower
                rooms = _int_between(r, 2, 4)
            levels = max(_int_between(r, 8, 11), math.ceil(need / (units * rooms)))
            if levels > 60:
                rooms = 8
                levels = max(11, math.ceil(need / (units * rooms)))
            levels = min(levels, 200)
            length = max(unit_len * units, min(depth, max_len))
            break
        levels = _int_between(r, *levels_r)
        fits = max(1, min(max_units, int(max_len // unit_r[0])))
        units = math.ceil(need / ((levels - first + 1) * rooms))
        if units > fits:
            levels, rooms = levels_r[1], rooms_r[1]
            units = math.ceil(need / ((levels - first + 1) * rooms))
        if units <= fits:
            length = min(units * unit_len, max_len)
            break
        kind = bigger
    b.kind = kind or "tower"
    while units * (levels - first + 1) * rooms < b.households:  # never short of flats
        levels += 1
    b.levels, b.units, b.rooms, b.first_floor = levels, units, rooms, first
    b.length = round(max(min(length, max_len), min(10.0, max_len)), 1)
    b.depth = round(min(depth, b.length if b.kind == "tower" else depth), 1)
    # A small turn off the street grid (none for the shops), if it still fits.
    turn = {"tower": 20.0, "village": 8.0, "lane": 4.0, "garden": 12.0}.get(b.kind, 0.0)
    if b.frontage:
        turn = 0.0
    angle = math.radians(_between(r, -turn, turn)) if turn else 0.0
    ca, sa = math.cos(angle), abs(math.sin(angle))
    ext_a, ext_c = b.length * ca + b.depth * sa, b.length * sa + b.depth * ca
    if ext_a > along or ext_c > across:
        angle, ext_a, ext_c = 0.0, b.length, b.depth
    b.angle = angle if along_x else angle + math.pi / 2
    slack_a, slack_c = along - ext_a, across - ext_c
    mid_x, mid_y = (ux0 + ux1) / 2, (uy0 + uy1) / 2
    if b.frontage:
        b.cx = mid_x + (r() - 0.5) * slack_a
        b.cy = uy1 - b.depth / 2 if cell.front > 0 else uy0 + b.depth / 2
    elif along_x:
        b.cx, b.cy = mid_x + (r() - 0.5) * slack_a, mid_y + (r() - 0.5) * slack_c
    else:
        b.cx, b.cy = mid_x + (r() - 0.5) * slack_c, mid_y + (r() - 0.5) * slack_a


def _office(comm: _Community) -> tuple[float, float]:
    """The committee office: just inside the north-west corner of the block nearest the middle
    (buildings are set back at least 3 m, so it is on open ground inside the community)."""
    mx, my = _centre(comm.grids)
    cell = min(
        (c for g in comm.grids for c in g.cells),
        key=lambda c: ((c.cx - mx) ** 2 + (c.cy - my) ** 2, c.col, c.row),
    )
    return cell.bx0 + 2.5, cell.by1 - 2.5


def _name_buildings(cells: Sequence[_Cell]) -> None:
    per_cell: dict[int, list[_Building]] = {}
    for cell in cells:
        per_cell[id(cell)] = []
    for cell in cells:
        assert cell.grid is not None
        for b in cell.grid.buildings:
            if b.cell is cell:
                per_cell[id(cell)].append(b)
    for cell in cells:
        for k, b in enumerate(sorted(per_cell[id(cell)], key=lambda b: b.code), start=1):
            suffix = "号" if b.kind in ("lane", "garden") else "号楼"
            b.name = f"{cell.compound}{k}{suffix}"
            b.address = f"{cell.road}{cell.lane}弄{k}号"


# --------------------------------------------------------------------------------------------
# Geometry rows
# --------------------------------------------------------------------------------------------


def _area_rows(plan: _Plan, ids: random.Random) -> dict[str, list[str]]:
    """COPY rows of the area tables and buildings; each level the exact union of the one below."""
    district_id = _uuid(ids)
    cell_box = {id(c): box(c.x0, c.y0, c.x1, c.y1) for c in plan.cells}

    def union(cells: Sequence[_Cell]) -> MultiPolygon:
        return _multi(shapely.union_all([cell_box[id(c)] for c in cells]))

    rows: dict[str, list[str]] = {t: [] for t in TABLES}
    subs, comms, grids = plan.subdistricts, [], []
    for sub in subs:
        sub.geom = union([c for g in sub.grids for c in g.cells])
        for comm in sub.communities:
            comms.append(comm)
            comm.geom = union([c for g in comm.grids for c in g.cells])
            for grid in comm.grids:
                grids.append(grid)
                grid.geom = union(grid.cells)
    district = _multi(shapely.union_all([s.geom for s in subs]))
    (district_hex,) = _hex([district])
    rows["district"].append(f"{district_id}\t{DISTRICT_CODE}\t{DISTRICT_NAME}\t{district_hex}\n")
    for sub, geom in zip(subs, _hex([s.geom for s in subs]), strict=True):
        rows["subdistrict"].append(
            f"{sub.id}\t{sub.code}\t{sub.name}\t{district_id}\tAsia/Shanghai\t{geom}\n"
        )
    for comm, geom in zip(comms, _hex([c.geom for c in comms]), strict=True):
        office = _point_hex(*comm.office)
        rows["community"].append(
            f"{comm.id}\t{comm.code}\t{comm.name}\t{comm.subdistrict.id}\t{geom}\t{office}\n"
        )
    for grid, geom in zip(grids, _hex([g.geom for g in grids]), strict=True):
        assert grid.community is not None
        rows["grid"].append(f"{grid.id}\t{grid.code}\t{grid.name}\t{grid.community.id}\t{geom}\n")
    parcels = [
        MultiPolygon([box(b.parcel[0], b.parcel[2], b.parcel[1], b.parcel[3])])
        for b in plan.buildings
    ]
    footprints = [b.footprint() for b in plan.buildings]
    grid_of = {b.code: g for g in grids for b in g.buildings}
    for b, parcel, foot in zip(plan.buildings, _hex(parcels), _hex(footprints), strict=True):
        grid = grid_of[b.code]
        rows["micro_grid"].append(
            f"{b.micro_id}\t{b.micro_code}\t{b.name}微网格\t{grid.id}\t{parcel}\n"
        )
        rows["building"].append(
            f"{b.id}\t{b.code}\t{b.name}\t{b.address}\t{b.levels}\t{b.micro_id}\t{foot}\n"
        )
    return rows


COLUMNS = {
    "district": ("id", "code", "name", "geom"),
    "subdistrict": ("id", "code", "name", "district_id", "timezone", "geom"),
    "community": ("id", "code", "name", "subdistrict_id", "geom", "office"),
    "grid": ("id", "code", "name", "community_id", "geom"),
    "micro_grid": ("id", "code", "name", "grid_id", "geom"),
    "building": ("id", "code", "name", "address", "levels", "micro_grid_id", "geom"),
    "household": (
        "id",
        "code",
        "building_id",
        "unit",
        "room",
        "household_class",
        "moved_in",
        "location",
    ),
    "person": (
        "id",
        "code",
        "household_id",
        "name",
        "gender",
        "relation",
        "birth_year",
        "phone",
        "id_number_sealed",
        "id_number_digest",
        "id_number_masked",
        "elderly_living_alone",
        "childless_elderly",
        "bereaved",
        "low_income",
        "disabled",
        "entitled_group",
        "seeking_work",
    ),
    "worker": (
        "id",
        "code",
        "name",
        "phone",
        "role",
        "subdistrict_id",
        "community_id",
        "unit_code",
    ),
    "worker_grid": ("worker_id", "grid_id"),
    "merchant": ("id", "code", "name", "category", "address", "employees", "building_id", "geom"),
    "visit": (
        "id",
        "household_id",
        "household_code",
        "worker_id",
        "visited_at",
        "mode",
        "night",
        "weekend",
        "tasks",
        "notes",
        "warnings",
        "idempotency_key",
        "recorded_at",
        "recorded_by",
    ),
    "demand": (
        "id",
        "household_id",
        "household_code",
        "visit_id",
        "text",
        "category",
        "resolution",
        "answer",
        "raised_at",
        "closed_at",
    ),
    "talent": (
        "id",
        "household_id",
        "household_code",
        "person_id",
        "skills",
        "willingness",
        "notes",
        "visit_id",
        "found_at",
        "updated_at",
    ),
    "job_opening": (
        "id",
        "code",
        "merchant_id",
        "title",
        "skills",
        "shifts",
        "weekly_hours",
        "wage",
        "headcount",
        "valid_from",
        "valid_until",
        "created_at",
        "created_by",
    ),
    "job_seeker": (
        "id",
        "person_id",
        "household_id",
        "household_code",
        "skills",
        "shifts",
        "weekly_hours",
        "min_wage",
        "max_walk_meters",
        "consent",
        "consent_at",
        "updated_at",
        "updated_by",
    ),
    "offer": (
        "id",
        "merchant_id",
        "title",
        "description",
        "radius_meters",
        "valid_from",
        "valid_until",
        "created_at",
        "created_by",
    ),
    "job_match": (
        "id",
        "seeker_id",
        "opening_id",
        "household_code",
        "state",
        "score",
        "distance_meters",
        "created_at",
        "created_by",
        "updated_at",
    ),
    "job_match_event": (
        "id",
        "match_id",
        "household_code",
        "from_state",
        "to_state",
        "at",
        "worker_code",
        "note",
    ),
    # A temporary table of the family files the demo sets (see _load_v3_visits).
    "demo_family_file": ("id", "contact_preference", "visit_times", "notes"),
    "grid_case": (
        "id",
        "number",
        "source",
        "category_code",
        "source_category",
        "description",
        "location",
        "grid_code",
        "micro_grid_code",
        "reporter_code",
        "reporter_name",
        "reporter_phone",
        "unit_code",
        "priority",
        "state",
        "reported_at",
        "dispatched_at",
        "deadline",
        "handled_at",
        "closed_at",
        "returned_count",
        "merged_into",
        "visit_id",
        "demand_id",
        "external_id",
        "version",
    ),
    "case_event": (
        "id",
        "case_id",
        "at",
        "action",
        "from_state",
        "to_state",
        "worker_code",
        "role",
        "unit_code",
        "note",
    ),
}


# --------------------------------------------------------------------------------------------
# People
# --------------------------------------------------------------------------------------------


class _People:
    """Names, phones and ID numbers, deterministic in the order they are asked for."""

    def __init__(self, rng: random.Random) -> None:
        self.r = rng.random
        self.id_serial: dict[str, int] = {}
        self.date_sums: dict[str, int] = {}
        self.year_days: dict[int, list[str]] = {}
        self.region_sum = sum(
            int(c) * w for c, w in zip(DISTRICT_CODE, ID_WEIGHTS[:6], strict=True)
        )

    def surname(self) -> str:
        return SURNAMES[bisect.bisect(_SURNAME_CUM, self.r() * _SURNAME_CUM[-1])]

    def given(self, gender: str, birth_year: int) -> str:
        r = self.r
        key = (_COHORT_OF_YEAR[birth_year], gender)
        if r() < 0.7:
            names = GIVEN_NAMES[key]
            return names[int(r() * len(names))]
        firsts, lasts = _GIVEN_CHARS[key]
        if r() < 0.2:
            return lasts[int(r() * len(lasts))]
        return firsts[int(r() * len(firsts))] + lasts[int(r() * len(lasts))]

    def phone(self) -> str:
        r = self.r
        return f"{PHONE_PREFIXES[int(r() * len(PHONE_PREFIXES))]}{int(r() * 100_000_000):08d}"

    def id_number(self, birth_year: int, gender: str) -> str:
        days = self.year_days.get(birth_year)
        if days is None:
            start = _date_ordinal(birth_year)
            days = [_ymd(o) for o in range(start, _date_ordinal(birth_year + 1))]
            self.year_days[birth_year] = days
        date = days[int(self.r() * len(days))]
        # Serial numbers count up per birth date, odd for men and even for women.
        key = date + gender
        n = self.id_serial.get(key, 0) + 1
        self.id_serial[key] = n
        serial = 2 * n - 1 if gender == "M" else 2 * n
        if serial > 999:
            serial = 2 * int(self.r() * 499) + (1 if gender == "M" else 2)
        dsum = self.date_sums.get(date)
        if dsum is None:
            dsum = sum(int(c) * w for c, w in zip(date, ID_WEIGHTS[6:14], strict=True))
            self.date_sums[date] = dsum
        total = self.region_sum + dsum + 8 * (serial // 100) + 4 * (serial // 10 % 10)
        total += 2 * (serial % 10)
        return f"{DISTRICT_CODE}{date}{serial:03d}{ID_CHECK[total % 11]}"


def _date_ordinal(year: int) -> int:
    return dt.date(year, 1, 1).toordinal()


def _ymd(ordinal: int) -> str:
    return dt.date.fromordinal(ordinal).strftime("%Y%m%d")


# Household size: 1-6 members, mean about 2.55 (Shanghai's is about 2.3-2.6).
_SIZE_CUM = [0.22, 0.55, 0.80, 0.91, 0.97, 1.0]
_FALSE7 = "f\tf\tf\tf\tf\tf\tf"
NULL = "\\N"  # COPY's NULL


def _members(size: int, r: Callable[[], float]) -> list[tuple[str, str, int]]:
    """(relation, gender, birth year) of each member, head first, ages consistent with relations."""
    y = REF_YEAR

    def born(age_low: float, age_high: float, skew: float = 1.0) -> int:
        return y - int(age_low + (age_high - age_low) * r() ** skew)

    def child_of(parent: int) -> int:
        low = parent + 22
        return min(y, low + int(r() * 17)) if low <= y else y

    def parent_of(person: int) -> int:
        return max(y - 100, person - 22 - int(r() * 15))

    def spouse_of(person: int, gender: str) -> int:
        # Husbands a little older than their wives, mostly.
        gap = int(r() * 6) if gender == "M" else -int(r() * 6)
        return min(y - 20, max(y - 100, person + gap))

    male_head = r() < 0.62
    hg, sg = ("M", "F") if male_head else ("F", "M")
    kids = lambda parent: ("M" if r() < 0.5 else "F", child_of(parent))  # noqa: E731
    x = r()
    if size == 1:
        if x < 0.30:
            return [("户主", "F" if r() < 0.65 else "M", born(65, 97, 1.4))]
        return [("户主", hg, born(20, 64, 1.5))]
    if size == 2:
        if x < 0.45:
            h = born(60, 92, 1.3)
            return [("户主", hg, h), ("配偶", sg, spouse_of(h, sg))]
        if x < 0.80:
            h = born(24, 59)
            return [("户主", hg, h), ("配偶", sg, spouse_of(h, sg))]
        h = born(42, 85)
        g, c = kids(h)
        return [("户主", hg, h), ("子女", g, c)]
    if size == 3:
        if x < 0.80:
            h = born(26, 62)
            g, c = kids(h)
            return [("户主", hg, h), ("配偶", sg, spouse_of(h, sg)), ("子女", g, c)]
        h = born(30, 60)
        return [
            ("户主", hg, h),
            ("配偶", sg, spouse_of(h, sg)),
            ("父母", "F" if r() < 0.6 else "M", parent_of(h)),
        ]
    if size == 4:
        h = born(30, 56)
        out = [("户主", hg, h), ("配偶", sg, spouse_of(h, sg))]
        if x < 0.5:
            return [*out, ("子女", *kids(h)), ("子女", *kids(h))]
        return [*out, ("子女", *kids(h)), ("父母", "F" if r() < 0.6 else "M", parent_of(h))]
    three_generations = x < (0.45 if size == 5 else 0.5)
    if three_generations:
        # An older couple, their son, his wife and their grandchildren.
        h = born(58, 82)
        son = min(y - 22, child_of(h))
        out = [
            ("户主", hg, h),
            ("配偶", sg, spouse_of(h, sg)),
            ("子女", "M", son),
            ("其他", "F", spouse_of(son, "F")),
        ]
        for _ in range(size - 4):
            out.append(("孙子女", "M" if r() < 0.5 else "F", child_of(son)))
        return out
    h = born(30, 55)
    out = [("户主", hg, h), ("配偶", sg, spouse_of(h, sg)), ("子女", *kids(h))]
    if size == 6:
        out.append(("子女", *kids(h)))
    return [*out, ("父母", "M", parent_of(h)), ("父母", "F", parent_of(h))]


def _population(
    plan: _Plan, vault: Vault, stop: threading.Event
) -> Iterator[tuple[int, list[str], list[str]]]:
    """(households, household rows, person rows) in chunks, buildings in code order."""
    rng = _rng(plan.seed, "population")
    r = rng.random
    people = _People(rng)
    surname, given, phone, id_number = people.surname, people.given, people.phone, people.id_number

    def sealed(number: str) -> str:
        """The three stored forms of an ID number, as COPY text columns (bytea as hex)."""
        cipher, digest, masked = vault.seal(number)
        return f"\\\\x{cipher.hex()}\t\\\\x{digest.hex()}\t{masked}"

    hh_rows: list[str] = []
    p_rows: list[str] = []
    count = 0
    y = REF_YEAR
    for b in plan.buildings:
        if stop.is_set():
            return
        h = b.households
        if not h:
            continue
        hot = b.cell.grid.hot  # type: ignore[union-attr]
        floors = b.levels - b.first_floor + 1
        per_unit = floors * b.rooms
        cap = b.units * per_unit
        # Which flats are taken: a partial shuffle of the flat numbers.
        flats = list(range(cap))
        for i in range(min(h, cap - 1)):
            j = i + int(r() * (cap - i))
            flats[i], flats[j] = flats[j], flats[i]
        taken = sorted(flats[:h])
        # Where each (unit, room) is: rooms around the unit's stair, inside the footprint.
        lu = b.length / b.units
        points: dict[int, str] = {}
        for flat in taken:
            u, rest = divmod(flat, per_unit)
            floor_i, room = divmod(rest, b.rooms)
            key = u * b.rooms + room
            pt = points.get(key)
            if pt is None:
                turn = 2 * math.pi * (room + 0.5) / b.rooms
                a = -b.length / 2 + (u + 0.5) * lu + 0.3 * lu * math.cos(turn)
                c = 0.3 * b.depth * math.sin(turn)
                pt = points[key] = _point_hex(*b.local_to_xy(a, c))
            unit = u + 1
            room_no = f"{floor_i + b.first_floor:02d}{room + 1:02d}"
            hcode = f"{b.code}-{unit}-{room_no}"
            hid = _uuid(rng)
            size = 1 + bisect.bisect(_SIZE_CUM, r())
            members = _members(size, r)
            head_year = members[0][2]
            has_children = any(m[0] in ("子女", "孙子女") for m in members)
            low_income = r() < 0.025
            bereaved = not has_children and size <= 2 and 50 <= y - head_year <= 80 and r() < 0.03
            special = False
            head_surname = surname()
            spouse_surname = surname()
            # Children take their father's surname; the head's father shares the head's.
            father = (
                spouse_surname
                if members[0][1] == "F" and size > 1 and (members[1][0] == "配偶")
                else head_surname
            )
            for m, (relation, gender, year) in enumerate(members, start=1):
                age = y - year
                if relation in ("子女", "孙子女"):
                    family = father
                elif relation == "户主" or (relation == "父母" and gender == "M"):
                    family = head_surname
                elif relation == "配偶":
                    family = spouse_surname
                else:
                    family = surname()
                name = family + given(gender, year)
                tel = NULL if age < 12 or (age >= 85 and r() < 0.5) else phone()
                alone = size == 1 and age >= 65
                childless = age >= 60 and not has_children and size <= 2 and r() < 0.05
                disabled = r() < (0.025 if age >= 60 else 0.008)
                entitled = age >= 50 and r() < (0.018 if gender == "M" else 0.003)
                poor = low_income and relation in ("户主", "配偶")
                lost = bereaved and relation in ("户主", "配偶")
                seeking = 18 <= age <= 59 and not disabled and r() < (0.14 if hot else 0.012)
                if alone or childless or disabled or entitled or poor or lost or seeking:
                    special = special or alone or childless or disabled or entitled or poor or lost
                    flags = "\t".join(  # in the order of COLUMNS["person"]
                        "t" if v else "f"
                        for v in (alone, childless, lost, poor, disabled, entitled, seeking)
                    )
                else:
                    flags = _FALSE7
                p_rows.append(
                    f"{_uuid(rng)}\t{hcode}-{m:02d}\t{hid}\t{name}\t{gender}\t{relation}\t{year}\t"
                    f"{tel}\t{sealed(id_number(year, gender))}\t{flags}\n"
                )
            if special:
                cls = "C"
            elif y - head_year < 60 and r() < 0.24:
                cls = "A"  # working families: phone and WeChat rather than a knock on the door
            else:
                cls = "B"
            first = max(1958, head_year + 18)
            year_in = first + int(r() ** 0.8 * (y - first + 1))
            moved_in = f"{min(year_in, y)}-{1 + int(r() * 12):02d}-{1 + int(r() * 28):02d}"
            hh_rows.append(f"{hid}\t{hcode}\t{b.id}\t{unit}\t{room_no}\t{cls}\t{moved_in}\t{pt}\n")
            count += 1
        if count >= CHUNK_HOUSEHOLDS:
            yield count, hh_rows, p_rows
            hh_rows, p_rows, count = [], [], 0
    if count:
        yield count, hh_rows, p_rows


# --------------------------------------------------------------------------------------------
# Workers and merchants
# --------------------------------------------------------------------------------------------


def _workers(plan: _Plan) -> tuple[list[str], list[str]]:
    rng = _rng(plan.seed, "workers")
    r = rng.random
    people = _People(rng)
    rows: list[str] = []
    links: list[str] = []

    def person() -> tuple[str, str]:
        gender = "F" if r() < 0.6 else "M"
        return people.surname() + people.given(gender, _int_between(r, 1965, 2000)), people.phone()

    def add(
        sub: _Subdistrict,
        serial: dict[str, int],
        role: str,
        community: _Community | None,
        unit: str | None,
        grids: Sequence[_Grid],
    ) -> None:
        tag = WORKER_TAGS[role]
        serial[tag] += 1
        wid = _uuid(rng)
        name, tel = person()
        rows.append(
            f"{wid}\tJA{sub.code[-3:]}-{tag}-{serial[tag]:04d}\t{name}\t{tel}\t{role}\t{sub.id}\t"
            f"{community.id if community else NULL}\t{unit or NULL}\n"
        )
        for grid in grids:
            links.append(f"{wid}\t{grid.id}\n")

    for sub in plan.subdistricts:
        serial = dict.fromkeys(WORKER_TAGS.values(), 0)
        for _ in range(_int_between(r, 4, 6)):
            add(sub, serial, "GRID_CENTER", None, None, ())
        for comm in sub.communities:
            for _ in range(3):  # the secretary, the director and a social worker
                add(sub, serial, "COMMUNITY", comm, None, comm.grids)
        for comm in sub.communities:
            for k, grid in enumerate(comm.grids):
                covers = [grid]
                # Now and then a block head also covers the next grid (a vacancy, a long leave).
                if k + 1 < len(comm.grids) and r() < 0.08:
                    covers.append(comm.grids[k + 1])
                add(sub, serial, "GRID_WORKER", comm, None, covers)
        for comm in sub.communities:
            for grid in comm.grids:
                for _ in range(max(1, round(len(grid.buildings) / 4))):
                    add(sub, serial, "MICRO_GRID_LEADER", comm, None, [grid])
        for unit, _name in DEPARTMENT_UNITS:
            for _ in range(2):
                add(sub, serial, "DEPARTMENT", None, unit, ())
    return rows, links


def _merchants(plan: _Plan) -> list[str]:
    rng = _rng(plan.seed, "merchants")
    r = rng.random
    people = _People(rng)
    categories = [(name, spec[0]) for name, spec in MERCHANT_CATEGORIES.items()]
    codes: set[str] = set()
    rows: list[str] = []
    for sub in plan.subdistricts:
        front_cells = [c for g in sub.grids for c in g.cells if c.front]
        if not front_cells:
            continue
        west = min(c.x0 for c in front_cells)
        in_building: list[tuple[float, float, int, _Building | None]] = []
        kiosks: list[tuple[float, float, int, _Building | None]] = []
        for cell in front_cells:
            side = cell.front
            edge = cell.by1 if side > 0 else cell.by0
            for b in cell.grid.buildings:  # type: ignore[union-attr]
                if b.cell is not cell or not b.frontage:
                    continue
                n = max(1, int(b.length // 9))
                for k in range(n):
                    x = b.cx - b.length / 2 + (k + 0.5) * b.length / n
                    y = b.cy + side * (b.depth / 2 - 2.0)  # 2 m inside the street-side wall
                    in_building.append((x, y, side, b))
            x = cell.bx0 + 4.0
            while x < cell.bx1 - 4.0:
                kiosks.append((x, edge - side * 1.2, side, None))
                x += 11.0
        _shuffle(in_building, r)
        _shuffle(kiosks, r)
        n_in = min(len(in_building), round(MERCHANTS_PER_SUBDISTRICT * 0.72))
        chosen = in_building[:n_in] + kiosks[: MERCHANTS_PER_SUBDISTRICT - n_in]
        chosen.sort(key=lambda s: (-s[2], s[0]))
        for x, y, side, b in chosen:
            category = _weighted(r, categories)
            _, endings, (lo, hi) = MERCHANT_CATEGORIES[category]
            style = r()
            if style < 0.3:
                prefix = people.surname() + "记"
            elif style < 0.45:
                prefix = "老" + people.surname()
            else:
                prefix = _pick(r, _MERCHANT_BRANDS)
            name = prefix + _pick(r, endings)
            number = 2 * int((x - west) / 10) + (2 if side < 0 else 1) + 100
            address = f"{sub.street}{number}号"
            employees = _int_between(r, lo, hi)
            code = _uscc(r, codes, individual=employees <= 5)
            building = b.id if b is not None else NULL
            rows.append(
                f"{_uuid(rng)}\t{code}\t{name}\t{category}\t{address}\t{employees}\t{building}\t"
                f"{_point_hex(x, y)}\n"
            )
    return rows


def _shuffle(items: list[Any], r: Callable[[], float]) -> None:
    for i in range(len(items) - 1, 0, -1):
        j = int(r() * (i + 1))
        items[i], items[j] = items[j], items[i]


def _uscc(r: Callable[[], float], taken: set[str], *, individual: bool) -> str:
    """A unified social credit code of a business registered in 静安区, check characters right."""
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    while True:
        head = "MA" if not individual and r() < 0.7 else ""
        org = head + "".join(_pick(r, alphabet) for _ in range(8 - len(head)))
        body = ("92" if individual else "91") + DISTRICT_CODE + org + _org_check(org)
        code = body + uscc_check(body)
        if code not in taken:
            taken.add(code)
            return code


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class _Context:
    """What a loading step needs: the cursor, the parameters, timings and the plan (built once)."""

    def __init__(self, cur: Any, households: int, seed: int, progress: bool, vault: Vault) -> None:
        self.cur = cur
        self.vault = vault
        self.households = households
        self.seed = seed
        self.progress = progress
        self.stages: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self._plan: _Plan | None = None

    @property
    def plan(self) -> _Plan:
        if self._plan is None:
            with self.stage(
                "layout", "laying out streets, blocks and buildings", 1, "plans"
            ) as bar:
                self._plan = _plan(self.households, self.seed)
                _mark_hot_grids(self._plan)
                bar.update(1)
        return self._plan

    @contextmanager
    def stage(self, name: str, desc: str, total: int, unit: str = "rows") -> Iterator[tqdm]:
        """Time a stage (``stages[name]``) and show its progress bar on stderr."""
        start = time.perf_counter()
        try:
            with tqdm(
                total=total,
                desc=f"demo: {desc}",
                unit=unit,
                unit_scale=total >= 10_000,
                file=sys.stderr,
                disable=not self.progress,
                leave=False,
                dynamic_ncols=True,
            ) as bar:
                yield bar
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - start

    def copy(self, table: str, rows: Sequence[str]) -> None:
        if not rows:
            return
        cols = ", ".join(COLUMNS[table])
        self.cur.copy_expert(
            f"COPY {table} ({cols}) FROM STDIN", io.StringIO("".join(rows)), size=1 << 20
        )
        self.counts[table] = self.counts.get(table, 0) + len(rows)


def _mark_hot_grids(plan: _Plan) -> None:
    """One or two grids per subdistrict where many residents look for work (a closed factory, a
    market moved away): where job matching has something to do."""
    r = _rng(plan.seed, "hot").random
    for sub in plan.subdistricts:
        grids = [g for c in sub.communities for g in c.grids]
        for _ in range(1 if len(grids) < 4 else 2):
            _pick(r, grids).hot = True


def _load_v1(ctx: _Context) -> None:
    """Version 1: the spatial hierarchy, households and members, workers and merchants."""
    plan = ctx.plan
    with ctx.stage("areas", "areas and buildings", 6, "tables") as bar:
        rows = _area_rows(plan, _rng(plan.seed, "area-ids"))
        for table in ("district", "subdistrict", "community", "grid", "micro_grid", "building"):
            ctx.copy(table, rows[table])
            bar.update(1)
    with ctx.stage("households", "households and members", plan.households, "households") as bar:
        restore = _suspend_indexes(ctx.cur, BULK_TABLES)
        for n, hh_rows, p_rows in _in_background(lambda stop: _population(plan, ctx.vault, stop)):
            ctx.copy("household", hh_rows)
            ctx.copy("person", p_rows)
            bar.update(n)
    with ctx.stage("indexes", "indexes and keys", len(restore), "steps") as bar:
        for sql in restore:
            ctx.cur.execute(sql)
            bar.update(1)
    with ctx.stage("workers", "workers", 2, "tables") as bar:
        rows_w, links = _workers(plan)
        ctx.copy("worker", rows_w)
        bar.update(1)
        ctx.copy("worker_grid", links)
        bar.update(1)
    with ctx.stage("merchants", "merchants", 1, "tables") as bar:
        ctx.copy("merchant", _merchants(plan))
        bar.update(1)


# Each version's step, in order: a fresh load runs them all, an older demo the ones it lacks.
# Later versions append theirs, e.g. ``(2, _load_visits)``.
# One demo user of each role signs in with this password (development only: a demo is demo data).
DEMO_PASSWORD = "gridmap-demo"
DEMO_ROLES = ("GRID_CENTER", "COMMUNITY", "GRID_WORKER", "DEPARTMENT")
# Fixed argon2 hash of DEMO_PASSWORD, so the demo stays deterministic and loads without hashing.
DEMO_PASSWORD_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$Z3JpZG1hcC1kZW1vLXNhbHQ$"
    "OxbWRRFItUv8o3B7cSiirReDRK2Ndb3yK4unYEHIA6A"
)


def demo_logins(cur: Any) -> dict[str, str]:
    """The demo user of each role: the first worker of that role in the home subdistrict."""
    cur.execute(
        "SELECT DISTINCT ON (w.role) w.role::text, w.code FROM worker w"
        " JOIN subdistrict s ON s.id = w.subdistrict_id"
        " WHERE s.code = %s AND w.role::text = ANY(%s) ORDER BY w.role, w.code",
        (HOME_SUBDISTRICT, list(DEMO_ROLES)),
    )
    return dict(cur.fetchall())


def demo_logins_of(url: str) -> dict[str, str]:
    """``demo_logins`` of the database at ``url``; empty when no demo is loaded."""
    conn = psycopg2.connect(_dsn(url))
    try:
        with conn, conn.cursor() as cur:
            return demo_logins(cur) if _read_info(cur) else {}
    finally:
        conn.close()


def _load_v2_logins(ctx: _Context) -> None:
    """Version 2: demo users of each role can sign in (see DEMO_PASSWORD)."""
    with ctx.stage("logins", "demo logins", 1, "steps") as bar:
        codes = list(demo_logins(ctx.cur).values())
        ctx.cur.execute(
            "UPDATE worker SET password_hash = %s WHERE code = ANY(%s)", (DEMO_PASSWORD_HASH, codes)
        )
        bar.update(1)


# --------------------------------------------------------------------------------------------
# Version 3: family files and six months of visits, demands and capable residents
# --------------------------------------------------------------------------------------------

# The history covers one class A/B cadence (182 days) and ends yesterday (local time), so no visit
# is in the future and the same day gives the same history whatever the hour of the load.
HISTORY_DAYS = 182
# Minutes of the local day: the worker's day, weekend visits, evenings when families are in.
WORK_DAY = (9 * 60, 17 * 60)
WEEKEND_DAY = (9 * 60 + 30, 17 * 60)
EVENING = (18 * 60 + 30, 20 * 60 + 30)
NIGHT_FROM_MINUTE = geo_visits.NIGHT_FROM.hour * 60  # as geo.visits counts night visits
NIGHT_UNTIL_MINUTE = geo_visits.NIGHT_UNTIL.hour * 60
WORKING_AGE_LIMIT = 60  # a head under 60 is out at work by day (ages as of REF_YEAR)
# Per grid, how diligently its team works, spread evenly over a subdistrict's grids: the best
# cover nearly everyone, the worst under a third of the households.
DILIGENCE = (0.25, 0.98)
HARD_TO_REACH = 0.10  # households often out or reluctant: visited about half as often
DEMAND_RATE = 0.11  # of visits that ask for demands: about 8 % of all visits
TALENT_RATE = 0.11  # of visits looking for capable residents: about 1 % of households
CLASS_A_CHANNELS = (("WECHAT", 0.45), ("PHONE", 0.35), ("ONLINE_GROUP", 0.15), ("EMAIL", 0.05))
# How often each task is done on a door visit, a class C door visit and a call or message.
_TASK_ODDS = {
    "door": (0.55, 0.15, 0.75, 0.5, 0.7, 0.12),
    "door_c": (0.4, 0.65, 0.8, 0.4, 0.75, 0.06),
    "remote": (0.08, 0.05, 0.6, 0.6, 0.6, 0.02),
}
DAYTIME, EVENING_SLOT, WEEKEND_SLOT = 0, 1, 2

FILE_NOTES = {
    "elderly": (
        "独居，子女在外地，每周电话问候一次",
        "腿脚不便，上门请多敲几次门",
        "听力不好，电话说不清，宜上门",
        "老伴住院中，需多关心",
        "有高血压，提醒按时服药",
        "每天上午去公园锻炼，下午在家",
    ),
    "working": (
        "夫妻双职工，工作日晚上7点后在家",
        "家有婴儿，午休时间请勿敲门",
        "经常出差，微信联系为宜",
        "周末在家，平日请勿上门",
        "孩子上小学，放学后老人接送",
    ),
    "A": (
        "不希望上门，请微信联系",
        "请电话联系，勿上门打扰",
        "已加入楼栋微信群，通知发群里即可",
    ),
}
VISIT_NOTES = {
    "door": (
        "身体状况良好",
        "已送达防诈骗宣传资料",
        "反映楼道堆物，已现场劝导清理",
        "了解到子女近期回沪探亲",
        "已宣传垃圾分类定时定点投放",
        "家中无人，留了联系卡",
        "已核对家庭成员信息",
    ),
    "door_c": (
        "老人血压偏高，已提醒按时服药",
        "已送上助餐券",
        "已登记高龄津贴申请意向",
        "独居老人精神状态良好，已检查燃气阀门",
        "协助预约家庭医生上门",
        "已代办长护险评估申请",
    ),
    "remote": (
        "电话回访，一切正常",
        "微信沟通，已转发社区通知",
        "已告知疫苗接种安排",
        "约定下次周末上门",
    ),
}
# Demands: (text, category of the case catalogue, answer given on the spot, share escalated).
DEMANDS = {
    "any": (
        ("楼道灯坏了", "facility_repair", "已报物业，三天内修好", 0.3),
        ("垃圾分类点太远", "garbage_sorting", "已解释定时定点投放安排，并向居委会反映", 0.18),
        ("停车难，晚上没有车位", "illegal_parking", "已介绍周边共享停车位", 0.24),
        ("楼上装修噪音太大", "noise", "已联系楼上住户，约定施工时间", 0.21),
        ("水管漏水", "facility_repair", "已联系物业维修", 0.36),
        ("楼道堆物影响通行", "fire_safety", "已现场劝导清理", 0.18),
        ("小区门口占道经营", "illegal_business", "已告知城管热线", 0.42),
        ("夜里广场舞音乐太响", "noise", "已与舞蹈队沟通降低音量", 0.24),
        ("绿化带缺人修剪", "greening", "已转告物业安排修剪", 0.3),
        ("共享单车乱停挡住出入口", "illegal_parking", "已联系运营企业清运", 0.3),
    ),
    "elderly": (
        ("希望增加老年助餐点", "elderly_service", "已告知社区长者食堂的位置和订餐电话", 0.18),
        ("希望加装电梯", "facility_repair", "已说明加装电梯的征询流程", 0.3),
        ("想了解高龄津贴怎么申请", None, "已说明申请材料，可到社区事务受理中心办理", 0.0),
        ("希望有人定期上门理发", "elderly_service", "已登记，助老志愿者每月上门一次", 0.12),
        ("想申请紧急呼叫设备", "elderly_service", "已登记，民政部门统一安装", 0.36),
    ),
    "working": (
        ("孩子放学后没人照看", "child_care", "已介绍社区“爱心暑托班”和课后服务", 0.12),
        ("想报名社区招聘会", None, "已推送招聘会时间和报名方式", 0.0),
        ("快递柜不够用", "facility_repair", "已向物业反映增设快递柜", 0.3),
        ("希望晚上开放社区活动室", None, "已告知活动室晚间开放时间", 0.0),
    ),
}
ESCALATED_CLOSED = 0.6  # escalated demands closed by now, 2-20 days after they were raised
TALENT_SKILLS = {
    "elderly": ("书法", "维修", "医护", "烹饪", "园艺", "太极", "裁缝", "理发"),
    "working": ("电脑", "法律", "医护", "会计", "英语", "摄影", "心理咨询", "驾驶", "维修"),
}
TALENT_NOTES = {
    "维修": "会修小家电，愿意帮邻居",
    "医护": "可参加义诊和健康讲座",
    "法律": "周末可提供法律咨询",
    "书法": "春节可为邻居写春联",
    "电脑": "可教老人用智能手机",
    "心理咨询": "可参与邻里调解",
}
WILLINGNESS_ODDS = {
    "elderly": (("VOLUNTEER", 0.6), ("NOT_NOW", 0.25), ("EITHER", 0.15)),
    "working": (("EITHER", 0.35), ("PAID_WORK", 0.25), ("VOLUNTEER", 0.25), ("NOT_NOW", 0.15)),
}

_HM = [f"{m // 60:02d}:{m % 60:02d}" for m in range(24 * 60)]
_SS = [f":{s:02d}" for s in range(60)]


@dataclass
class _GridTeam:
    """Who visits a grid's households, and how diligently: coverage differs from grid to grid."""

    workers: list[tuple[str, str]]  # (id, code) of its GRID_WORKERs
    leaders: list[tuple[str, str]]  # and of its MICRO_GRID_LEADERs (volunteers)
    diligence: float


@dataclass
class _Days:
    """The history's days in a subdistrict's time zone: date text, weekday, UTC offset text."""

    first: dt.date  # day 0
    dates: list[str]
    weekdays: list[int]
    offsets: list[str]


def _history_days(today: dt.date, zone: str) -> _Days:
    tz = ZoneInfo(zone)
    first = today - dt.timedelta(days=HISTORY_DAYS)
    dates, weekdays, offsets = [], [], []
    for k in range(HISTORY_DAYS):
        day = first + dt.timedelta(days=k)
        # Visits are 09:00-20:30: DST changes (at night) never fall between noon and the visit.
        offset = dt.datetime(day.year, day.month, day.day, 12, tzinfo=tz).utcoffset()
        assert offset is not None
        minutes = int(offset.total_seconds()) // 60
        sign = "-" if minutes < 0 else "+"
        dates.append(day.isoformat())
        weekdays.append(day.weekday())
        offsets.append(f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}")
    return _Days(first, dates, weekdays, offsets)


class _History:
    """Family files and visit history of households in code order, chunk by chunk, from one
    random stream (so the same households, seed and day give the same rows)."""

    def __init__(
        self, rng: random.Random, teams: dict[str, _GridTeam], days: dict[str, _Days]
    ) -> None:
        self.rng = rng
        self.r = rng.random
        self.teams = teams
        self.days = days
        last = HISTORY_DAYS - 1
        # Class C: one visit a month where the team keeps up; the last "month" is the 29 days up
        # to yesterday, so a visit in it keeps the household within its 30 days today.
        bounds = [round((HISTORY_DAYS - 29) * i / 5) for i in range(6)] + [HISTORY_DAYS]
        self.months = [(bounds[i], bounds[i + 1] - 1) for i in range(6)]
        self.last = last

    def chunk(
        self, rows: Sequence[tuple[Any, ...]]
    ) -> tuple[int, list[str], list[str], list[str], list[str]]:
        """(households, visit rows, demand rows, talent rows, family-file rows) of ``rows``:
        (id, code, class, first day index it may be visited, head's person id, head's birth
        year)."""
        visits: list[str] = []
        demands: list[str] = []
        talents: list[str] = []
        files: list[str] = []
        team: _GridTeam | None = None
        days: _Days | None = None
        grid = ""
        for hid, code, cls, first_day, head_id, head_year in rows:
            if code[:15] != grid:
                grid = code[:15]
                team = self.teams.get(grid)
                days = self.days.get(code[:9])
            age = REF_YEAR - head_year if head_year else 45
            kind = "working" if age < WORKING_AGE_LIMIT else "elderly"
            preference, times, note = self._file(cls, kind)
            files.append(f"{hid}\t{preference}\t{{{','.join(times)}}}\t{note}\n")
            if team is None or days is None or not team.workers:
                continue
            self._visits(
                hid, code, cls, kind, preference, times, first_day or 0, head_id, team, days,
                visits, demands, talents,
            )  # fmt: skip
        return len(rows), visits, demands, talents, files

    def _file(self, cls: str, kind: str) -> tuple[str, tuple[str, ...], str]:
        """Contact preference, preferred visit times and (now and then) a note of a family."""
        r = self.r
        preference = _weighted(r, CLASS_A_CHANNELS) if cls == "A" else "DOOR"
        x = r()
        if kind == "working":
            if x < 0.55:
                times: tuple[str, ...] = ("WEEKDAY_EVENING", "WEEKEND")
            elif x < 0.8:
                times = ("WEEKDAY_EVENING",)
            elif x < 0.95:
                times = ("WEEKEND",)
            else:
                times = ()
        elif x < 0.8:
            times = ("WEEKDAY_DAYTIME",)
        elif x < 0.9:
            times = ("WEEKDAY_DAYTIME", "WEEKEND")
        else:
            times = ()
        note = NULL
        if r() < 0.04:
            note = _pick(r, FILE_NOTES["A" if cls == "A" else kind])
        return preference, times, note

    def _visits(
        self,
        hid: str,
        code: str,
        cls: str,
        kind: str,
        preference: str,
        times: tuple[str, ...],
        first_day: int,
        head_id: str | None,
        team: _GridTeam,
        days: _Days,
        visits: list[str],
        demands: list[str],
        talents: list[str],
    ) -> None:
        r = self.r
        last = self.last
        d = team.diligence
        reach = 0.5 if r() < HARD_TO_REACH else 1.0
        planned: list[tuple[int, int, str]] = []  # (first day, last day, mode) of each contact
        if cls == "C":
            for i, (lo, hi) in enumerate(self.months):
                # Even the best teams miss some: nobody home, in hospital, away with the children.
                odds = min(0.9, d) if i == 5 else min(0.95, d + 0.05)
                if r() < odds * reach:
                    planned.append((lo, hi, "DOOR" if r() < 0.85 else _remote(r)))
        elif cls == "B":
            if r() < d * reach:
                for _ in range(2 if r() < 0.35 else 1):
                    planned.append((0, last, "DOOR" if r() < 0.85 else _remote(r)))
        else:
            if r() < d:
                for _ in range(2 if r() < 0.15 else 1):
                    planned.append((0, last, preference))
            if r() < 0.04:  # a new worker knocks anyway: recorded, with a warning
                planned.append((0, last, "DOOR"))
        talent_found = False
        for lo, hi, mode in planned:
            lo = max(lo, first_day)
            if lo > hi:
                continue
            door = mode == "DOOR"
            slot = self._slot(kind, times, door)
            day, minute = self._when(days, lo, hi, slot)
            if door and r() < 0.25 and team.leaders:
                wid, wcode = team.leaders[int(r() * len(team.leaders))]
            else:
                wid, wcode = team.workers[int(r() * len(team.workers))]
            odds_kind = ("door_c" if cls == "C" else "door") if door else "remote"
            odds = _TASK_ODDS[odds_kind]
            tasks = [t for t, p in zip(geo_visits.TASKS, odds, strict=True) if r() < p]
            if not tasks:
                tasks = ["KNOW_FAMILY"]
            note = _pick(r, VISIT_NOTES[odds_kind]) if r() < 0.12 else NULL
            warnings = "{}"
            if door and cls == "A":
                warnings = '{"' + geo_visits.door_to_class_a(code, preference) + '"}'
            vid = _uuid(self.rng)
            date, off = days.dates[day], days.offsets[day]
            second = _SS[int(r() * 60)]
            at = f"{date} {_HM[minute]}{second}{off}"
            recorded = f"{date} {_HM[minute + 1 + int(r() * 20)]}{second}{off}"
            night = "t" if minute >= NIGHT_FROM_MINUTE or minute < NIGHT_UNTIL_MINUTE else "f"
            weekend = "t" if days.weekdays[day] >= 5 else "f"
            visits.append(
                f"{vid}\t{hid}\t{code}\t{wid}\t{at}\t{mode}\t{night}\t{weekend}\t"
                f"{{{','.join(tasks)}}}\t{note}\t{warnings}\tdemo-{vid}\t{recorded}\t{wcode}\n"
            )
            if "ASK_DEMANDS" in tasks and r() < DEMAND_RATE:
                demands.append(self._demand(hid, code, kind, vid, at, days, day))
            if (
                "FIND_TALENT" in tasks
                and head_id is not None
                and not talent_found
                and r() < TALENT_RATE
            ):
                talent_found = True
                talents.append(self._talent(hid, code, kind, head_id, vid, at))

    def _slot(self, kind: str, times: tuple[str, ...], door: bool) -> int:
        """When to call: working families in the evening or at the weekend, the elderly by day."""
        x = self.r()
        if kind == "elderly":
            weekend = 0.2 if "WEEKEND" in times else 0.05
            return WEEKEND_SLOT if x < weekend else DAYTIME
        if not door:  # calls and messages: by day or after work
            return EVENING_SLOT if x < 0.3 else DAYTIME
        evening, weekend = {
            ("WEEKDAY_EVENING", "WEEKEND"): (0.45, 0.35),
            ("WEEKDAY_EVENING",): (0.75, 0.0),
            ("WEEKEND",): (0.0, 0.7),
        }.get(times, (0.3, 0.15))
        if x < evening:
            return EVENING_SLOT
        return WEEKEND_SLOT if x < evening + weekend else DAYTIME

    def _when(self, days: _Days, lo: int, hi: int, slot: int) -> tuple[int, int]:
        """A day in [lo, hi] that suits the slot (a weekend day, or a weekday), and a minute."""
        r = self.r
        day = lo + int(r() * (hi - lo + 1))
        wd = days.weekdays[day]
        if slot == WEEKEND_SLOT and wd < 5:
            back, ahead = day - wd - 1, day + 5 - wd  # the Sunday before, the Saturday after
        elif slot != WEEKEND_SLOT and wd >= 5:
            back, ahead = day - (wd - 4), day + 7 - wd  # the Friday before, the Monday after
        else:
            back = ahead = day
        if back >= lo and (ahead > hi or r() < 0.5):
            day = back
        elif ahead <= hi:
            day = ahead
        low, high = (
            EVENING if slot == EVENING_SLOT else WEEKEND_DAY if slot == WEEKEND_SLOT else WORK_DAY
        )
        return day, low + int(r() * (high - low))

    def _demand(
        self, hid: str, code: str, kind: str, vid: str, at: str, days: _Days, day: int
    ) -> str:
        r = self.r
        pool = DEMANDS[kind] if r() < 0.4 else DEMANDS["any"]
        text, category, answer, escalated = _pick(r, pool)
        if r() < escalated:
            closed = NULL
            wait = 2 + int(r() * 19)
            if r() < ESCALATED_CLOSED and day + wait <= self.last:
                later = day + wait
                minute = WORK_DAY[0] + int(r() * (WORK_DAY[1] - WORK_DAY[0]))
                closed = f"{days.dates[later]} {_HM[minute]}:00{days.offsets[later]}"
            return (
                f"{_uuid(self.rng)}\t{hid}\t{code}\t{vid}\t{text}\t{category or NULL}\t"
                f"ESCALATED\t{NULL}\t{at}\t{closed}\n"
            )
        return (
            f"{_uuid(self.rng)}\t{hid}\t{code}\t{vid}\t{text}\t{category or NULL}\t"
            f"ANSWERED\t{answer}\t{at}\t{at}\n"
        )

    def _talent(self, hid: str, code: str, kind: str, person: str, vid: str, at: str) -> str:
        r = self.r
        pool = TALENT_SKILLS[kind]
        skills = {_pick(r, pool)}
        if r() < 0.35:
            skills.add(_pick(r, pool))
        ordered = sorted(skills)
        note = TALENT_NOTES.get(ordered[0], NULL) if r() < 0.6 else NULL
        willingness = _weighted(r, WILLINGNESS_ODDS[kind])
        return (
            f"{_uuid(self.rng)}\t{hid}\t{code}\t{person}\t{{{','.join(ordered)}}}\t"
            f"{willingness}\t{note}\t{vid}\t{at}\t{at}\n"
        )


def _remote(r: Callable[[], float]) -> str:
    return "PHONE" if r() < 0.65 else "WECHAT"


def _teams(cur: Any, seed: int) -> dict[str, _GridTeam]:
    """Each grid's visitors (its grid workers and micro-grid leaders) and diligence: evenly spread
    over each subdistrict's grids in a seeded order, so every subdistrict has well and poorly
    covered grids."""
    cur.execute(
        "SELECT g.code, w.role::text, w.id::text, w.code FROM grid g"
        " LEFT JOIN worker_grid wg ON wg.grid_id = g.id"
        " LEFT JOIN worker w ON w.id = wg.worker_id"
        "  AND w.role IN ('GRID_WORKER', 'MICRO_GRID_LEADER')"
        " ORDER BY g.code, w.code"
    )
    teams: dict[str, _GridTeam] = {}
    for grid, role, wid, wcode in cur.fetchall():
        team = teams.setdefault(grid, _GridTeam([], [], 0.0))
        if role == "GRID_WORKER":
            team.workers.append((wid, wcode))
        elif role == "MICRO_GRID_LEADER":
            team.leaders.append((wid, wcode))
    r = _rng(seed, "diligence").random
    by_subdistrict: dict[str, list[str]] = {}
    for grid in teams:
        by_subdistrict.setdefault(grid[:9], []).append(grid)
    low, high = DILIGENCE
    for grids in by_subdistrict.values():
        n = len(grids)
        levels = [low + (high - low) * i / (n - 1) for i in range(n)] if n > 1 else [0.75]
        _shuffle(levels, r)
        for grid, level in zip(grids, levels, strict=True):
            teams[grid].diligence = level
    return teams


# Tables version 3 fills, whose indexes and keys are rebuilt after the copy.
HISTORY_TABLES = ("visit", "demand", "talent")
# Households in code order with their head's person id and birth year, streamed: index scans
# that give the first rows at once, so the fetching overlaps the generating.
HISTORY_HOUSEHOLDS = """
SELECT h.id::text, h.code, h.household_class,
       greatest(h.moved_in - %(first)s::date, 0), p.id::text, p.birth_year
FROM household h
LEFT JOIN LATERAL (
    SELECT p.id, p.birth_year FROM person p
    WHERE p.household_id = h.id AND p.relation = '户主' ORDER BY p.code LIMIT 1
) p ON true
WHERE h.moved_out IS NULL
ORDER BY h.code
"""


def _load_v3_visits(ctx: _Context) -> None:
    """Version 3: family files (contact preference, visit times, a few notes) and six months of
    visits ending yesterday, with demands raised on them, capable residents found and each
    subdistrict's cadence policy, covered unevenly grid by grid so the coverage maps show
    something. Bulk: COPY with the visit table's indexes, keys and row trigger set aside, then
    one UPDATE of the households' files and last contacts from the visits."""
    cur = ctx.cur
    cur.execute(
        "SELECT code, id::text, timezone, (now() AT TIME ZONE timezone)::date"
        " FROM subdistrict ORDER BY code"
    )
    subdistricts = cur.fetchall()
    if not subdistricts:
        return
    days = {code: _history_days(today, zone) for code, _, zone, today in subdistricts}
    home = days.get(HOME_SUBDISTRICT) or next(iter(days.values()))
    first = home.first
    # The same grids are well or poorly covered whenever the demo is loaded; the visits shift
    # with the day (and their weekdays with it).
    history = _History(_rng(ctx.seed, f"visits:{first.isoformat()}"), _teams(cur, ctx.seed), days)

    # The trigger would update a household per visit; one UPDATE below does it for all.
    cur.execute("ALTER TABLE visit DISABLE TRIGGER visit_touches_household")
    restore = _suspend_indexes(cur, HISTORY_TABLES)
    cur.execute(
        "CREATE TEMP TABLE demo_family_file (id uuid, contact_preference text,"
        " visit_times text[], notes text) ON COMMIT DROP"
    )
    households = cur.connection.cursor(name="demo_history_households")
    try:
        households.execute(HISTORY_HOUSEHOLDS, {"first": first})
        fetch = lambda: households.fetchmany(CHUNK_HOUSEHOLDS)  # noqa: E731
        with ctx.stage("visits", "visits, demands, talents", ctx.households, "households") as bar:
            for n, visits, demands, talents, files in _pipelined(fetch, history.chunk):
                ctx.copy("visit", visits)
                ctx.copy("demand", demands)
                ctx.copy("talent", talents)
                ctx.copy("demo_family_file", files)
                bar.update(n)
    finally:
        households.close()
    with ctx.stage("visit_indexes", "visit indexes and keys", len(restore), "steps") as bar:
        for sql in restore:
            cur.execute(sql)
            bar.update(1)
    with ctx.stage("family_files", "family files and last contacts", 1, "steps") as bar:
        cur.execute("ANALYZE demo_family_file")
        # Every household row is rewritten: rebuilding its indexes afterwards (the GiST one
        # above all) is several times faster than updating them row by row.
        restore = _suspend_indexes(cur, ("household",))
        # It would look up each changed preference's last contact row by row: this statement
        # sets it from the visits itself.
        cur.execute("ALTER TABLE household DISABLE TRIGGER household_preference_changed")
        cur.execute(
            "UPDATE household h SET contact_preference = f.contact_preference,"
            " visit_times = f.visit_times, notes = f.notes,"
            " last_contact_at = l.last_at, last_preferred_contact_at = l.preferred_at"
            " FROM demo_family_file f LEFT JOIN ("
            "  SELECT v.household_id, max(v.visited_at) AS last_at,"
            "   max(v.visited_at) FILTER (WHERE v.mode = ff.contact_preference) AS preferred_at"
            "  FROM visit v JOIN demo_family_file ff ON ff.id = v.household_id"
            "  GROUP BY v.household_id) l ON l.household_id = f.id"
            " WHERE h.id = f.id"
        )
        cur.execute("ALTER TABLE household ENABLE TRIGGER household_preference_changed")
        cur.execute("ALTER TABLE visit ENABLE TRIGGER visit_touches_household")
        for sql in restore:
            cur.execute(sql)
        bar.update(1)
    cur.execute(
        "INSERT INTO cadence_policy (subdistrict_id, starts_on, updated_by)"
        " SELECT id::uuid, first, 'demo' FROM unnest(%s::text[], %s::date[]) AS p(id, first)"
        " ON CONFLICT (subdistrict_id) DO NOTHING",
        ([s[1] for s in subdistricts], [days[s[0]].first for s in subdistricts]),
    )
    ctx.counts["cadence_policy"] = ctx.counts.get("cadence_policy", 0) + cur.rowcount


def _pipelined(fetch: Callable[[], list[Any]], make: Callable[[list[Any]], Any]) -> Iterator[Any]:
    """``make`` of each batch ``fetch`` returns, made in a thread one batch ahead, so Python
    generates the next chunk while PostgreSQL copies this one. The fetching stays in the caller's
    thread: a connection must not be asked for rows while it is in the middle of a COPY."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gridmap-demo-history") as pool:
        rows = fetch()
        pending = pool.submit(make, rows) if rows else None
        while pending is not None:
            rows = fetch()
            done = pending.result()
            pending = pool.submit(make, rows) if rows else None
            yield done


# --------------------------------------------------------------------------------------------
# Version 4: merchants' contacts and hours, job openings and seekers, offers, a match history
# --------------------------------------------------------------------------------------------

# The tags openings ask for and seekers offer: one fixed vocabulary, so the two sides meet.
JOB_SKILLS = _words(
    "收银 理货 销售 普通话 上海话 电脑 办公软件 会计 英语 客服 烹饪 面点 健康证 食品安全 保洁 "
    "家政 育儿 护理 急救 搬运 仓储 快递分拣 驾驶 电动车驾驶 维修 电工 缝纫 理发 保安 教学"
)
_SKILL_ORDER = {s: i for i, s in enumerate(JOB_SKILLS)}
# A job's week: its shifts (geo.jobs.SHIFT_HOURS) and the range of its weekly hours, which its
# shifts always hold.
JOB_WEEKS = {
    "daytime": (("WEEKDAY_MORNING", "WEEKDAY_AFTERNOON"), (36, 40)),
    "six_days": (("WEEKDAY_MORNING", "WEEKDAY_AFTERNOON", "WEEKEND_DAYTIME"), (40, 48)),
    "mornings": (("WEEKDAY_MORNING",), (12, 20)),
    "late": (("WEEKDAY_AFTERNOON", "WEEKDAY_EVENING"), (24, 35)),
    "evenings": (("WEEKDAY_EVENING", "WEEKEND_EVENING"), (10, 20)),
    "weekends": (("WEEKEND_DAYTIME", "WEEKEND_EVENING"), (8, 20)),
    "shop": (
        ("WEEKDAY_AFTERNOON", "WEEKDAY_EVENING", "WEEKEND_DAYTIME", "WEEKEND_EVENING"),
        (30, 44),
    ),
}
# What each kind of merchant hires: (title, skills (the first always asked for), weeks, wage
# range in yuan per hour, largest headcount).
JOBS: dict[str, tuple[tuple[str, tuple[str, ...], tuple[str, ...], tuple[int, int], int], ...]] = {
    "餐饮": (
        ("服务员", ("普通话", "收银", "上海话"), ("late", "shop", "weekends"), (22, 30), 3),
        ("厨房帮工", ("烹饪", "健康证", "食品安全"), ("six_days", "mornings"), (22, 30), 2),
        ("面点师", ("面点", "健康证"), ("mornings", "six_days"), (28, 40), 1),
        ("洗碗工", (), ("evenings", "late"), (20, 25), 2),
        ("收银员", ("收银", "普通话"), ("shop", "late"), (22, 28), 1),
        ("外卖配送员", ("电动车驾驶",), ("evenings", "weekends"), (26, 38), 3),
    ),
    "便利店": (
        ("店员", ("收银", "理货", "普通话"), ("shop", "evenings", "weekends"), (21, 27), 2),
        ("理货员", ("理货", "搬运"), ("mornings",), (21, 26), 2),
    ),
    "理发": (
        ("洗头工", ("理发",), ("shop", "weekends"), (20, 28), 2),
        ("美发助理", ("理发", "销售"), ("six_days",), (25, 35), 1),
        ("保洁员", ("保洁",), ("evenings",), (20, 25), 1),
    ),
    "药店": (
        ("营业员", ("销售", "收银", "普通话"), ("six_days", "shop"), (24, 32), 2),
        ("理货员", ("理货",), ("mornings",), (21, 26), 1),
        ("送药员", ("电动车驾驶",), ("weekends", "evenings"), (24, 32), 2),
    ),
    "家政": (
        ("保洁员", ("保洁",), ("mornings", "daytime"), (28, 40), 4),
        ("育儿嫂", ("育儿", "家政", "烹饪", "健康证"), ("daytime", "six_days"), (35, 45), 2),
        ("钟点工", ("家政", "保洁"), ("mornings", "weekends"), (30, 40), 4),
        ("护工", ("护理", "急救"), ("six_days", "daytime"), (30, 42), 3),
    ),
    "维修": (
        ("维修学徒", ("维修", "电工"), ("six_days",), (20, 28), 1),
        ("上门维修员", ("维修", "电工", "电动车驾驶"), ("daytime",), (30, 45), 1),
    ),
    "超市": (
        ("收银员", ("收银", "普通话"), ("shop", "weekends", "evenings"), (22, 28), 4),
        ("理货员", ("理货", "搬运", "仓储"), ("mornings", "daytime"), (22, 28), 3),
        ("生鲜处理员", ("烹饪", "健康证", "食品安全"), ("mornings", "six_days"), (23, 30), 2),
        ("保安", ("保安", "急救"), ("six_days", "evenings"), (22, 30), 2),
        ("兼职会计", ("会计", "电脑", "办公软件"), ("weekends", "mornings"), (35, 45), 1),
    ),
    "快递": (
        ("快递分拣员", ("快递分拣", "搬运", "仓储"), ("mornings", "evenings"), (22, 32), 4),
        ("配送员", ("电动车驾驶", "驾驶"), ("six_days", "daytime"), (28, 40), 3),
        ("驿站店员", ("电脑", "客服", "普通话"), ("late", "weekends"), (20, 26), 2),
    ),
    "洗衣": (
        ("洗衣工", ("保洁",), ("daytime", "mornings"), (21, 27), 2),
        ("熨烫缝补工", ("缝纫",), ("mornings", "daytime"), (24, 32), 1),
    ),
    "培训": (
        ("前台", ("电脑", "办公软件", "客服"), ("late", "weekends"), (22, 30), 1),
        ("助教", ("教学", "英语", "电脑"), ("weekends", "evenings"), (30, 45), 2),
        ("兼职会计", ("会计", "电脑", "办公软件"), ("mornings", "weekends"), (35, 45), 1),
        ("保洁员", ("保洁",), ("evenings",), (22, 28), 1),
    ),
    "水果": (
        ("店员", ("收银", "销售", "上海话"), ("shop", "weekends"), (21, 27), 2),
        ("搬运工", (), ("mornings",), (22, 28), 1),
    ),
    "服装": (
        ("导购", ("销售", "普通话"), ("shop", "weekends"), (22, 30), 2),
        ("裁缝", ("缝纫",), ("daytime", "mornings"), (25, 38), 1),
    ),
    "五金": (
        ("店员", ("销售", "收银"), ("six_days",), (21, 28), 1),
        ("送货安装工", ("搬运", "驾驶", "电工"), ("daytime",), (26, 38), 2),
    ),
}
HIRING = 0.8  # of merchants with openings; each has one to three
# Opening hours by category (a breakfast shop opens early, a convenience store never closes).
OPENING_HOURS = {
    "餐饮": ("10:00-22:00", "10:30-21:30", "11:00-23:00"),
    "便利店": ("07:00-23:00", "00:00-24:00", "06:30-22:30"),
    "理发": ("09:30-21:00", "10:00-22:00"),
    "药店": ("08:00-22:00", "08:30-21:00"),
    "家政": ("08:30-17:30", "09:00-18:00"),
    "维修": ("09:00-19:00", "08:30-18:30"),
    "超市": ("07:00-22:00", "06:30-21:30"),
    "快递": ("08:00-20:00", "09:00-21:00"),
    "洗衣": ("08:30-20:00", "09:00-19:30"),
    "培训": ("09:00-20:30", "13:00-21:00"),
    "水果": ("08:00-22:00", "08:30-21:30"),
    "服装": ("10:00-21:00", "09:30-20:30"),
    "五金": ("08:00-18:30", "08:30-19:00"),
}
_BREAKFAST = ("包子铺", "生煎馆", "馄饨铺", "小吃")
# Seekers: the trade they know (the skills they draw from) and its weight by age (under 35,
# 35-49, 50 and over), so their skills meet what the street's merchants ask for.
SEEKER_TRADES = {
    "餐饮": (("烹饪", "面点", "健康证", "食品安全", "收银", "普通话"), (2, 3, 3)),
    "零售": (("收银", "理货", "销售", "普通话", "上海话", "电脑"), (4, 3, 2)),
    "家政": (("保洁", "家政", "育儿", "护理", "烹饪", "急救", "健康证"), (1, 3, 4)),
    "物流": (("搬运", "仓储", "快递分拣", "驾驶", "电动车驾驶"), (3, 2, 1)),
    "办公": (("电脑", "办公软件", "会计", "英语", "客服", "教学"), (4, 2, 1)),
    "手艺": (("维修", "电工", "缝纫", "理发", "驾驶"), (1, 2, 2)),
    "安保": (("保安", "急救", "驾驶", "普通话", "上海话"), (1, 1, 2)),
}
# Trades more often of women (W) or men (M) among the seekers, as the registers show.
SEEKER_TRADE_GENDER = {"家政": ("F", 2.0, 0.3), "物流": ("M", 2.0, 0.5), "安保": ("M", 2.0, 0.3)}
# When a seeker is free: shifts, the weekly hours they want (never more than the shifts hold),
# and how common that is.
SEEKER_WEEKS = (
    (("WEEKDAY_MORNING", "WEEKDAY_AFTERNOON"), (30, 40), 3),
    (("WEEKDAY_MORNING", "WEEKDAY_AFTERNOON", "WEEKEND_DAYTIME"), (40, 50), 2),
    (("WEEKDAY_MORNING",), (12, 20), 2),  # while the children are at school
    (("WEEKDAY_MORNING", "WEEKEND_DAYTIME"), (20, 30), 1),
    (("WEEKDAY_AFTERNOON", "WEEKDAY_EVENING", "WEEKEND_DAYTIME", "WEEKEND_EVENING"), (30, 45), 2),
    (("WEEKDAY_EVENING", "WEEKEND_DAYTIME", "WEEKEND_EVENING"), (15, 30), 2),  # after a day job
)
SEEKER_CONSENT = 0.85  # of residents flagged seeking work who agreed to be matched
OFFERS_PER_SUBDISTRICT = 10
# Offers and notices by category: (title, description).
OFFERS = {
    "餐饮": (
        ("午市套餐八折", "工作日11:00-13:00凭社区居民卡堂食八折"),
        ("老人助餐优惠", "60岁以上老人每份套餐减3元，可电话预订送餐上门"),
    ),
    "便利店": (("早餐套餐5元", "每天7:00-9:00包子豆浆套餐5元，社区居民专享"),),
    "理发": (("老人理发10元", "70岁以上老人理发每次10元，每周二可预约上门"),),
    "药店": (("免费测血压血糖", "每天上午9:00-11:00免费测血压、血糖，慢病用药可预约"),),
    "家政": (("新客首单减30元", "社区居民首次预约保洁服务立减30元"),),
    "维修": (("小家电免费检测", "每月第一个周六上午在社区广场免费检测小家电"),),
    "超市": (
        ("会员日满100减10", "每周三会员日，社区居民购物满100元减10元"),
        ("生鲜晚市特价", "每晚8点后蔬菜水果五折"),
    ),
    "快递": (("快递免费保管7天", "社区居民快递免费保管7天，老人可预约送件上楼"),),
    "洗衣": (("冬衣清洗九折", "羽绒服、大衣清洗九折，满三件上门取送"),),
    "培训": (
        ("老年智能手机课", "每周四下午免费教老人用智能手机：挂号、付款、视频通话"),
        ("暑托班报名", "社区学生暑期托管班开始报名，名额有限"),
    ),
    "水果": (("满50元送货上门", "水果满50元免费送货上门，限步行15分钟内"),),
    "服装": (("换季清仓五折起", "秋冬款清仓五折起，裁缝改衣免费"),),
    "五金": (("上门安装免工时费", "社区居民购买灯具、龙头等上门安装免工时费"),),
}
# The match history: how many matches each subdistrict has ended in each state by now.
MATCH_HISTORY = {"HIRED": 5, "DECLINED": 4, "INTERVIEWED": 3, "CONTACTED": 3, "PROPOSED": 4}
MATCH_HISTORY_DAYS = 60
# The steps a match took to its state, and what the grid worker wrote at each.
_MATCH_PATHS = {
    "PROPOSED": (("PROPOSED",),),
    "CONTACTED": (("PROPOSED", "CONTACTED"),),
    "INTERVIEWED": (("PROPOSED", "CONTACTED", "INTERVIEWED"),),
    "HIRED": (
        ("PROPOSED", "CONTACTED", "INTERVIEWED", "HIRED"),
        ("PROPOSED", "CONTACTED", "HIRED"),
    ),
    "DECLINED": (
        ("PROPOSED", "DECLINED"),
        ("PROPOSED", "CONTACTED", "DECLINED"),
        ("PROPOSED", "CONTACTED", "INTERVIEWED", "DECLINED"),
    ),
}
MATCH_NOTES = {
    "CONTACTED": (
        "已电话联系居民，有意向",
        "已微信发送岗位详情，居民想去看看",
        "上门告知，居民愿意试试",
    ),
    "INTERVIEWED": ("已陪同到店面试", "商户已面试，等待答复", "试工一天，双方都满意"),
    "HIRED": ("已上岗，签订劳动合同", "双方满意，下周一上岗", "已录用，试用期一个月"),
}
# Why a match was declined, by the state it was in.
DECLINE_NOTES = {
    "PROPOSED": ("居民嫌工作时间不合适", "居民已在别处找到工作"),
    "CONTACTED": ("家里有老人要照顾，暂不考虑", "工资低于居民预期"),
    "INTERVIEWED": ("商户已招满", "面试未通过，商户想找有经验的"),
}
JOB_TABLES = TABLES[TABLES.index("job_opening") : TABLES.index("job_match_event") + 1]
JOB_MERCHANTS = """
SELECT m.id::text, m.code, m.name, m.category, s.code, s.timezone,
       (now() AT TIME ZONE s.timezone)::date, g.code,
       (SELECT count(*) FROM job_opening o WHERE o.merchant_id = m.id)
FROM merchant m
JOIN LATERAL (SELECT g.code, g.community_id FROM grid g WHERE ST_Covers(g.geom, m.geom)
              ORDER BY g.code LIMIT 1) g ON true
JOIN community c ON c.id = g.community_id
JOIN subdistrict s ON s.id = c.subdistrict_id
ORDER BY m.code
"""
# Residents flagged seeking work (version 1), not registered yet, in code order.
JOB_PERSONS = """
WITH p AS MATERIALIZED (  -- a few in a hundred: found first, then their households
    SELECT id, code, household_id, birth_year, gender FROM person WHERE seeking_work
)
SELECT p.id::text, p.code, p.household_id::text, h.code, p.birth_year, p.gender, s.timezone,
       (now() AT TIME ZONE s.timezone)::date
FROM p
JOIN household h ON h.id = p.household_id
JOIN subdistrict s ON s.code = left(h.code, 9)
WHERE h.moved_out IS NULL AND h.location IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM job_seeker js WHERE js.person_id = p.id)
ORDER BY p.code
"""
# Every feasible pair of the new seekers and openings by the rules of geo.jobs.candidates
# (the shift hours are checked in Python), as of the day each opening was published.
JOB_PAIRS = """
SELECT js.id::text, js.household_code, o.id::text, o.valid_from, o.headcount,
       ST_Distance(h.location::geography, m.geom::geography),
       js.skills, js.shifts, js.weekly_hours, js.min_wage, js.max_walk_meters,
       o.skills, o.shifts, o.weekly_hours, o.wage
FROM job_seeker js
JOIN household h ON h.id = js.household_id
JOIN job_opening o ON o.wage >= js.min_wage AND o.weekly_hours <= js.weekly_hours
     AND o.shifts && js.shifts AND (cardinality(o.skills) = 0 OR o.skills && js.skills)
JOIN merchant m ON m.id = o.merchant_id
     AND ST_DWithin(m.geom::geography, h.location::geography, js.max_walk_meters)
WHERE js.id = ANY(%(seekers)s::uuid[]) AND o.id = ANY(%(openings)s::uuid[])
ORDER BY js.household_code, js.id, o.code
"""


def _array(items: Sequence[str]) -> str:
    return "{" + ",".join(items) + "}"


def _at(day: dt.date, minute: int, zone: str) -> str:
    """A local time of a day as timestamptz text."""
    local = dt.datetime.combine(day, dt.time(minute // 60, minute % 60), ZoneInfo(zone))
    return local.isoformat()


def _work_minute(r: Callable[[], float]) -> int:
    return WORK_DAY[0] + int(r() * (WORK_DAY[1] - WORK_DAY[0]))


def _load_v4_jobs(ctx: _Context) -> None:
    """Version 4: what the grid's "micro-platform" needs. The commercial streets' merchants get
    a phone and opening hours, most of them openings; the residents flagged seeking work who
    agreed to it become job seekers, with skills, hours and wages that fit what the street asks
    for; a few merchants post offers; and each subdistrict has a two months' history of matches
    in every state, some hired. Built from the database (not the plan), so a large demo
    upgrades in seconds; the same seed on the same day gives the same rows."""
    cur = ctx.cur
    teams = _teams(cur, ctx.seed)
    with ctx.stage("jobs", "merchants, job openings, seekers and offers", 3, "steps") as bar:
        cur.execute(JOB_MERCHANTS)
        merchants = cur.fetchall()
        r = _rng(ctx.seed, "jobs").random
        openings = _openings(ctx, merchants, teams, r)
        bar.update(1)
        cur.execute(JOB_PERSONS)
        seekers = _seekers(ctx, cur.fetchall(), teams, r)
        bar.update(1)
        _offers(ctx, merchants, teams, r)
        bar.update(1)
    with ctx.stage("job_matches", "job matches and their history", 1, "steps") as bar:
        cur.execute("ANALYZE job_seeker")
        cur.execute("ANALYZE job_opening")
        cur.execute(JOB_PAIRS, {"seekers": seekers, "openings": list(openings)})
        pairs = cur.fetchall()
        _history(ctx, pairs, openings, teams)
        bar.update(1)


def _load_v5_network(ctx: _Context) -> None:
    """Version 5: the walking network, from the plan's street centre lines (the edges of the
    block cells, jogs and all; arterials as OpenStreetMap's ``primary``, the rest
    ``residential``) and a path from each building's and office's door to its nearest street."""
    with ctx.stage("network", "walking network", 2, "steps") as bar:
        streets = _streets(ctx.plan)
        bar.update(1)
        counts = network.build(ctx.cur, streets)
        ctx.counts["walk_edge"] = counts["edges"]
        ctx.counts["walk_entrance"] = counts["entrances"]
        bar.update(1)


def _streets(plan: _Plan) -> list[network.Street]:
    """Each side of each block cell, classed by the width of its street (half widths of 15 m
    and more are the arterials); shared sides and jogs are noded by ``network``."""
    sides: dict[tuple[float, ...], str] = {}
    for c in plan.cells:
        wide = {
            (c.x0, c.y0, c.x0, c.y1): c.bx0 - c.x0, (c.x1, c.y0, c.x1, c.y1): c.x1 - c.bx1,
            (c.x0, c.y0, c.x1, c.y0): c.by0 - c.y0, (c.x0, c.y1, c.x1, c.y1): c.y1 - c.by1,
        }  # fmt: skip
        for side, half in wide.items():
            sides[side] = "primary" if half >= 15 else "residential"
    lines = [LineString([(x0, y0), (x1, y1)]) for x0, y0, x1, y1 in sides]
    degrees = shapely.transform(lines, _to_degrees)
    return [network.Street(g, h) for g, h in zip(degrees, sides.values(), strict=True)]


def _worker(team: _GridTeam | None, r: Callable[[], float]) -> str:
    if team is None or not team.workers:
        return NULL
    return _pick(r, team.workers)[1]


def _openings(
    ctx: _Context, merchants: list[tuple[Any, ...]], teams: dict[str, _GridTeam], r: Any
) -> dict[str, tuple[str, str]]:
    """Contacts and opening hours of every merchant, and openings of most; returns the
    openings' ids with their code and time zone."""
    rng = _rng(ctx.seed, "job-ids")
    updates: list[tuple[str, str, str]] = []
    rows: list[str] = []
    made: dict[str, tuple[str, str]] = {}
    for mid, code, name, category, _sub, zone, today, grid, existing in merchants:
        if r() < 0.8:
            contact = f"021-6{int(r() * 10_000_000):07d}"
        else:  # a small shop's owner answers his mobile
            contact = f"{_pick(r, PHONE_PREFIXES)}{int(r() * 100_000_000):08d}"
        hours = _pick(r, OPENING_HOURS.get(category, ("09:00-21:00",)))
        if category == "餐饮" and name.endswith(_BREAKFAST):
            hours = _pick(r, ("06:00-13:30", "06:30-19:00"))
        updates.append((code, contact, hours))
        kinds = JOBS.get(category, ())
        if not kinds or r() >= HIRING:
            continue
        n = min(len(kinds), _weighted(r, ((1, 0.55), (2, 0.33), (3, 0.12))))
        picks = list(range(len(kinds)))
        _shuffle(picks, r)
        for k, j in enumerate(sorted(picks[:n]), start=existing + 1):
            title, skills, weeks, (low, high), most = kinds[j]
            shifts, (h_low, h_high) = JOB_WEEKS[_pick(r, weeks)]
            wanted = list(skills[:1])
            if len(skills) > 1 and r() < 0.4:
                wanted.append(_pick(r, skills[1:]))
            start = today - dt.timedelta(days=_int_between(r, 7, 75))
            until = NULL
            if r() < 0.55:
                until = (today + dt.timedelta(days=_int_between(r, 14, 120))).isoformat()
            oid = _uuid(rng)
            made[oid] = (f"{code}-J{k:02d}", zone)
            rows.append(
                f"{oid}\t{code}-J{k:02d}\t{mid}\t{title}\t{_array(wanted)}\t{_array(shifts)}\t"
                f"{_int_between(r, h_low, h_high)}\t{_int_between(r, low, high)}\t"
                f"{1 + int(r() ** 1.6 * most)}\t{start}\t{until}\t"
                f"{_at(start, _work_minute(r), zone)}\t{_worker(teams.get(grid), r)}\n"
            )
    ctx.cur.execute(
        "UPDATE merchant m SET contact = v.contact, opening_hours = v.hours"
        " FROM unnest(%s::text[], %s::text[], %s::text[]) AS v(code, contact, hours)"
        " WHERE m.code = v.code",
        tuple(map(list, zip(*updates, strict=True))) if updates else ([], [], []),
    )
    ctx.copy("job_opening", rows)
    return made


def _seekers(
    ctx: _Context, persons: list[tuple[Any, ...]], teams: dict[str, _GridTeam], r: Any
) -> list[str]:
    """The residents seeking work who agreed to be matched; returns their ids."""
    rng = _rng(ctx.seed, "seeker-ids")
    rows: list[str] = []
    made: list[str] = []
    for pid, _code, hid, hcode, birth_year, gender, zone, today in persons:
        if r() >= SEEKER_CONSENT:
            continue
        age = REF_YEAR - birth_year
        band = 0 if age < 35 else 1 if age < 50 else 2
        options = []
        for trade, (_, weights) in SEEKER_TRADES.items():
            weight = float(weights[band])
            if trade in SEEKER_TRADE_GENDER:
                more, up, down = SEEKER_TRADE_GENDER[trade]
                weight *= up if gender == more else down
            options.append((trade, weight))
        pool = list(SEEKER_TRADES[_weighted(r, options)][0])
        _shuffle(pool, r)
        skills = pool[: _int_between(r, 2, 4)]
        if r() < 0.3:  # and one anybody may have
            general = _pick(r, ("普通话", "上海话", "电脑", "驾驶"))
            if general not in skills:
                skills[-1] = general
        shifts, (h_low, h_high), _ = _weighted(r, [(w, w[2]) for w in SEEKER_WEEKS])
        min_wage = min(35, _int_between(r, 18, 30) + (4 if r() < 0.2 else 0))
        walk = 500 + 50 * _int_between(r, 0, 30 if age < 50 else 18)
        since = today - dt.timedelta(days=_int_between(r, MATCH_HISTORY_DAYS + 5, 180))
        at = _at(since, _work_minute(r), zone)
        sid = _uuid(rng)
        made.append(sid)
        rows.append(
            f"{sid}\t{pid}\t{hid}\t{hcode}\t{_array(sorted(skills, key=_SKILL_ORDER.get))}\t"
            f"{_array(shifts)}\t{_int_between(r, h_low, h_high)}\t{min_wage}\t{walk}\tt\t"
            f"{at}\t{at}\t{_worker(teams.get(hcode[:15]), r)}\n"
        )
    ctx.copy("job_seeker", rows)
    return made


def _offers(
    ctx: _Context, merchants: list[tuple[Any, ...]], teams: dict[str, _GridTeam], r: Any
) -> None:
    """A few merchants of each subdistrict post a discount or a notice for the neighbours."""
    rng = _rng(ctx.seed, "offer-ids")
    by_subdistrict: dict[str, list[tuple[Any, ...]]] = {}
    for m in merchants:
        if m[3] in OFFERS:
            by_subdistrict.setdefault(m[4], []).append(m)
    rows: list[str] = []
    for sub in sorted(by_subdistrict):
        candidates = by_subdistrict[sub]
        _shuffle(candidates, r)
        chosen: list[tuple[Any, ...]] = []
        per_category: dict[str, int] = {}
        for m in candidates:  # two of a kind at most: not ten fruit shops
            if len(chosen) < OFFERS_PER_SUBDISTRICT and per_category.get(m[3], 0) < 2:
                chosen.append(m)
                per_category[m[3]] = per_category.get(m[3], 0) + 1
        for mid, _code, _name, category, _sub, zone, today, grid, _ in sorted(
            chosen, key=lambda m: m[1]
        ):
            title, description = _pick(r, OFFERS[category])
            start = today - dt.timedelta(days=_int_between(r, 0, 20))
            until = NULL
            if r() < 0.7:
                until = (today + dt.timedelta(days=_int_between(r, 10, 60))).isoformat()
            rows.append(
                f"{_uuid(rng)}\t{mid}\t{title}\t{description}\t{100 * _int_between(r, 3, 15)}\t"
                f"{start}\t{until}\t{_at(start, _work_minute(r), zone)}\t"
                f"{_worker(teams.get(grid), r)}\n"
            )
    ctx.copy("offer", rows)


def _match_score(
    distance: float,
    limit: float,
    wanted: Sequence[str],
    offered: Sequence[str],
    job_hours: int,
    free_hours: int,
    wage: int,
    min_wage: int,
) -> float:
    """The score geo.jobs gives a candidate (0 to 100): what a proposal recorded back then."""
    parts = {
        "distance": max(0.0, 1 - distance / limit),
        "skills": len(set(wanted) & set(offered)) / len(wanted) if wanted else 1.0,
        "hours": min(job_hours, free_hours) / free_hours,
        "wage": min(1.0, (wage - min_wage) / max(jobs.WAGE_FULL_MARKS * min_wage, 1)),
    }
    return round(100 * sum(jobs.WEIGHTS[k] * v for k, v in parts.items()), 2)


def _history(
    ctx: _Context,
    pairs: list[tuple[Any, ...]],
    openings: dict[str, tuple[str, str]],
    teams: dict[str, _GridTeam],
) -> None:
    """Matches of the last two months, ``MATCH_HISTORY`` of each state per subdistrict, each
    with its events: a seeker has one match at most (so one live one), an opening no more
    proposals and hires than its headcount, and every pair is a feasible candidate."""
    ctx.cur.execute("SELECT code, (now() AT TIME ZONE timezone)::date FROM subdistrict")
    days: dict[str, dt.date] = dict(ctx.cur.fetchall())
    if not days:
        return
    # The history moves with the day it is loaded on, as the visits do.
    home = days.get(HOME_SUBDISTRICT) or min(days.values())
    r = _rng(ctx.seed, f"job-history:{home.isoformat()}").random
    rng = _rng(ctx.seed, "job-match-ids")
    by_seeker: dict[str, list[tuple[Any, ...]]] = {}
    for pair in pairs:
        sid, _code, _oid, _start, _headcount, distance, *rest = pair
        s_skills, s_shifts, s_hours, min_wage, walk, o_skills, o_shifts, o_hours, wage = rest
        if sum(jobs.SHIFT_HOURS[s] for s in set(s_shifts) & set(o_shifts)) < o_hours:
            continue
        score = _match_score(distance, walk, o_skills, s_skills, o_hours, s_hours, wage, min_wage)
        by_seeker.setdefault(sid, []).append((*pair[:6], score))
    subdistricts: dict[str, list[str]] = {}
    for sid, found in by_seeker.items():
        subdistricts.setdefault(found[0][1][:9], []).append(sid)
    taken: dict[str, int] = {}
    matches: list[str] = []
    events: list[str] = []
    for sub in sorted(subdistricts):
        today = days[sub]
        order = subdistricts[sub]
        _shuffle(order, r)
        plan = [state for state, n in MATCH_HISTORY.items() for _ in range(n)]
        _shuffle(plan, r)
        for state in plan:
            while order:
                sid = order.pop()
                made = _match(r, rng, state, by_seeker[sid], openings, teams, taken, today)
                if made is not None:
                    matches.append(made[0])
                    events.extend(made[1])
                    break
    ctx.copy("job_match", matches)
    ctx.copy("job_match_event", events)


def _match(
    r: Callable[[], float],
    rng: random.Random,
    state: str,
    found: list[tuple[Any, ...]],
    openings: dict[str, tuple[str, str]],
    teams: dict[str, _GridTeam],
    taken: dict[str, int],
    today: dt.date,
) -> tuple[str, list[str]] | None:
    """One match of a seeker ending in ``state``, with its events, or None when none of the
    seeker's candidates has a place left or the time for it."""
    path = _pick(r, _MATCH_PATHS[state])
    gaps = [_int_between(r, 1, 4) for _ in path[1:]]
    # A live match is recent; a finished one may be up to two months old.
    oldest = today - dt.timedelta(days=MATCH_HISTORY_DAYS if state in ("HIRED", "DECLINED") else 21)
    usable = [c for c in found if (state == "DECLINED" or taken.get(c[2], 0) < c[4])]
    if not usable:
        return None
    usable.sort(key=lambda c: -c[6])
    chosen = usable[0] if r() < 0.6 else _pick(r, usable)
    sid, hcode, oid, valid_from, _headcount, distance, score = chosen
    first = max(oldest, valid_from + dt.timedelta(days=1))  # after it was published
    last = today - dt.timedelta(days=1 + sum(gaps))
    if first > last:
        return None
    team = teams.get(hcode[:15])
    if team is None or not team.workers:
        return None
    worker = _pick(r, team.workers)[1]
    zone = openings[oid][1]
    day = first + dt.timedelta(days=int(r() * ((last - first).days + 1)))
    mid = _uuid(rng)
    events: list[str] = []
    times: list[str] = []
    previous = NULL
    for k, step in enumerate(path):
        if k:
            day += dt.timedelta(days=gaps[k - 1])
        at = _at(day, _work_minute(r), zone)
        times.append(at)
        if step == "PROPOSED":
            note = f"网格员推荐：步行约{distance:.0f}米，匹配分{score:.0f}"
        elif step == "DECLINED":
            note = _pick(r, DECLINE_NOTES[previous])
        else:
            note = _pick(r, MATCH_NOTES[step])
        events.append(f"{_uuid(rng)}\t{mid}\t{hcode}\t{previous}\t{step}\t{at}\t{worker}\t{note}\n")
        previous = step
    if state != "DECLINED":
        taken[oid] = taken.get(oid, 0) + 1
    row = (
        f"{mid}\t{sid}\t{oid}\t{hcode}\t{state}\t{score}\t{distance}\t{times[0]}\t{worker}\t"
        f"{times[-1]}\n"
    )
    return row, events


# --------------------------------------------------------------------------------------------
# Version 6: twelve months of cases, with planted hotspots and a falling hotline
# --------------------------------------------------------------------------------------------

CASE_MONTHS = 12
# Cases a month per 1,000 households in the oldest month of the twelve and in the newest,
# geometric in between (month lengths counted). The hotline falls threefold as grid governance
# takes hold (Junliangcheng street, Tianjin: "more than 1,000 cases a month, now more than
# 400"), the grid workers' whistles rise about as much, online reports grow a little. For the
# default 5,000 households: 12345 about 150 a month falling to 50, whistles 50 rising to 160,
# online 15 to 30, plus the escalated demands of the visits (version 3, last six months only,
# 10 to 30 a month): some 215 to 260 cases a month, 2,700 a year.
CASE_RATES = {
    "HOTLINE_12345": (30.0, 10.0),
    "GRID_WHISTLE": (10.0, 32.0),
    "RESIDENT_ONLINE": (3.0, 6.0),
}
# By weekday, Monday first: grid workers patrol on working days, 12345 answers every day,
# residents write online at weekends too. Each day's weight also varies at random (x0.6-1.4).
CASE_WEEKDAYS = {
    "HOTLINE_12345": (1.0, 1.0, 1.0, 1.0, 1.0, 0.8, 0.75),
    "GRID_WHISTLE": (1.0, 1.0, 1.0, 1.0, 1.0, 0.35, 0.2),
    "RESIDENT_ONLINE": (1.0, 1.0, 1.0, 1.0, 1.0, 1.1, 1.1),
}
# By hour of the local day.
CASE_HOURS = {
    "HOTLINE_12345": (
        0.1, 0.05, 0.03, 0.03, 0.05, 0.1, 0.4, 1.0, 1.8, 2.0, 1.8, 1.5,
        1.2, 1.5, 1.6, 1.5, 1.4, 1.3, 1.2, 1.3, 1.3, 1.1, 0.7, 0.3,
    ),
    "GRID_WHISTLE": (
        0, 0, 0, 0, 0, 0, 0, 0, 0.6, 1.6, 1.8, 1.4,
        0.6, 1.2, 1.7, 1.6, 1.2, 0.3, 0, 0, 0, 0, 0, 0,
    ),
    "RESIDENT_ONLINE": (
        0.2, 0.1, 0.05, 0.05, 0.05, 0.1, 0.3, 0.7, 1.0, 1.1, 1.0, 1.0,
        1.2, 1.0, 1.0, 1.0, 0.9, 0.9, 1.1, 1.4, 1.6, 1.6, 1.2, 0.6,
    ),
    # Noise is called in late in the evening, and before dawn when the market unloads.
    "NOISE": (
        1.2, 0.6, 0.2, 0.1, 0.6, 1.2, 1.2, 0.8, 0.6, 0.6, 0.6, 0.5,
        0.6, 0.6, 0.5, 0.5, 0.5, 0.5, 0.8, 1.6, 2.4, 2.8, 2.4, 1.8,
    ),
}  # fmt: skip
# Category of the catalogue: relative frequency among whistles, hotline calls and online
# reports (patrols find garbage, parking and vending; residents call about noise, repairs and
# their property company), where it is reported ("street": on the street or the lane by the
# parcel's edge; "near": by a building; "building": at it), and its season (SEASONS).
CASE_CATEGORIES: dict[str, tuple[float, float, float, str, str | None]] = {
    "ILLEGAL_PARKING": (14, 12, 10, "street", None),
    "STREET_VENDING": (9, 4, 3, "street", "evenings out"),
    "EXPOSED_GARBAGE": (16, 6, 6, "street", None),
    "GARBAGE_SORTING": (12, 4, 5, "near", None),
    "ILLEGAL_CONSTRUCTION": (6, 3, 2, "near", None),
    "GREEN_LAND_VEGETABLES": (6, 2, 2, "near", "planting"),
    "FACILITY_REPAIR": (12, 14, 14, "building", None),
    "UTILITY_OUTAGE": (2, 6, 5, "building", "heat and cold"),
    "NOISE": (2, 13, 12, "near", "windows open"),
    "MOSQUITOES": (3, 5, 6, "near", "mosquitoes"),
    "PROPERTY_DISPUTE": (2, 10, 10, "building", None),
    "NEIGHBOUR_DISPUTE": (3, 5, 4, "building", None),
    "FOOD_SAFETY": (2, 3, 4, "street", None),
    "ASSISTANCE": (6, 3, 2, "building", None),
    "EMERGENCY": (3, 1.5, 1, "street", None),
    "OTHER": (2, 8, 8, "near", None),
}
# Month-of-year factors, January first: mosquitoes from May to October (none in winter),
# vegetables sown in spring and autumn, noise with the windows open, outages in the heat and
# the cold, vending on summer evenings.
SEASONS = {
    "mosquitoes": (0.0, 0.0, 0.1, 0.3, 0.9, 2.0, 3.0, 3.0, 1.8, 0.7, 0.2, 0.0),
    "planting": (0.3, 0.5, 1.5, 1.8, 1.5, 1.1, 0.9, 0.9, 1.2, 1.4, 0.6, 0.3),
    "windows open": (0.8, 0.7, 0.9, 1.0, 1.1, 1.3, 1.4, 1.4, 1.1, 1.0, 0.8, 0.7),
    "heat and cold": (1.4, 1.2, 0.8, 0.7, 0.8, 1.2, 1.6, 1.5, 1.0, 0.7, 0.8, 1.3),
    "evenings out": (0.7, 0.7, 0.9, 1.0, 1.2, 1.3, 1.3, 1.3, 1.2, 1.0, 0.8, 0.7),
}
# The version 3 demands' categories (lower case, from before the catalogue) as catalogue codes;
# the others become OTHER with their own name kept in source_category.
DEMAND_CATEGORY_CODES = {
    "facility_repair": "FACILITY_REPAIR",
    "garbage_sorting": "GARBAGE_SORTING",
    "illegal_parking": "ILLEGAL_PARKING",
    "noise": "NOISE",
    "illegal_business": "STREET_VENDING",  # 小区门口占道经营
}
# Planted hotspots, per subdistrict: the share of its cases of the category reported there
# (x min(1, HOTSPOT_FULL_SIZE / its households), so a big subdistrict's spot is not absurd),
# and the Gaussian spread (east-west, north-south) in metres. See case_hotspots.
HOTSPOTS = {
    "ILLEGAL_PARKING": (0.35, (70.0, 12.0)),  # along the middle of the commercial street
    "NOISE": (0.3, (30.0, 30.0)),  # the market at the far end of the commercial street
    "MOSQUITOES": (0.5, (35.0, 35.0)),  # a garden compound (green, standing water), summer
    "GREEN_LAND_VEGETABLES": (0.45, (30.0, 30.0)),  # an old estate (新村) where residents sow
}
HOTSPOT_FULL_SIZE = 6000
HOTSPOT_POOL = 600  # points drawn per hotspot, located once, each case taking one
HOTSPOT_APART_M = 350.0  # the compounds chosen away from the other spots
# How cases go (of those that get that far): rejected (by source), reported again by a
# neighbour and merged into the first, never handled or left returned (overdue), handled late,
# returned by the grid worker once (and of those, twice), urgent.
REJECT_RATE = {"HOTLINE_12345": 0.06, "RESIDENT_ONLINE": 0.05, "GRID_WHISTLE": 0.015, "VISIT": 0.06}
DUPLICATE_RATE = 0.025
STUCK_RATE = 0.012
# Of the cases of the last BACKLOG_DAYS, those still waiting at some step (not yet accepted,
# not dispatched, not checked, not closed): what the grid center chases.
BACKLOG_RATE = 0.06
BACKLOG_DAYS = 45
LATE_RATE = 0.08
RETURN_RATE = 0.07
RETURN_TWICE = 0.12
URGENT_RATE = {"EMERGENCY": 1.0, "UTILITY_OUTAGE": 0.4}
URGENT_OTHERWISE = 0.02
CASE_EXTRA_DAYS = 200  # calendar days past today: deadlines and the steps beyond today
CASE_CHUNK_EVENTS = 20_000  # events per COPY: small enough for generating and copying to overlap

CASE_TEXTS = {
    "ILLEGAL_PARKING": ("{s}门口机动车乱停，堵住小区出入口", "{s}附近人行道上长期停放车辆",
                        "{b}楼下共享单车乱停放，影响通行", "{s}消防通道被私家车占用"),
    "STREET_VENDING": ("{s}门口有流动摊贩占道经营", "{s}附近早点摊占用人行道",
                       "{s}沿街商户店外占道堆物经营"),
    "EXPOSED_GARBAGE": ("{s}路边有暴露垃圾，未及时清运", "{s}附近装修垃圾堆放多日",
                        "{b}旁垃圾满溢，气味很大"),
    "GARBAGE_SORTING": ("{b}垃圾箱房混投严重", "{b}旁垃圾箱房未按时开放",
                        "{s}湿垃圾桶破损，污水外溢"),
    "ILLEGAL_CONSTRUCTION": ("{b}底楼住户私自搭建阳光房", "{b}屋顶疑似违法搭建",
                             "{b}住户占用公共绿地搭建棚屋"),
    "GREEN_LAND_VEGETABLES": ("{b}旁公共绿地被开垦种菜", "{b}楼下绿化带内私自种菜并搭架",
                              "{s}绿地被居民圈占种植蔬菜"),
    "FACILITY_REPAIR": ("{b}楼道灯不亮", "{b}单元门门禁损坏", "{b}屋顶漏水", "{b}雨水管破损",
                        "{b}电梯故障停运"),
    "UTILITY_OUTAGE": ("{b}停水，事先没有通知", "{b}整栋楼停电", "{b}水压过低，高层没水",
                       "{b}燃气供应中断"),
    "NOISE": ("{b}住户夜间装修噪声扰民", "{s}附近广场舞音响声音过大", "{b}楼上住户深夜噪声扰民",
              "{s}附近夜间施工噪声扰民"),
    "MOSQUITOES": ("{b}旁绿化带蚊虫很多，希望消杀", "{s}附近积水，蚊虫孳生",
                   "{b}地下室积水，蚊子多"),
    "PROPERTY_DISPUTE": ("{b}物业对公共部位报修长期不处理", "{b}居民对物业费调价有异议",
                         "{b}更换物业未经业主大会表决"),
    "NEIGHBOUR_DISPUTE": ("{b}楼上漏水至楼下，协商不成", "{b}邻居在楼道堆放杂物引发矛盾",
                          "{b}邻居饲养犬只扰民"),
    "FOOD_SAFETY": ("{s}附近餐饮店后厨卫生差", "{s}附近小吃店疑似无证经营",
                    "{s}附近流动摊贩售卖食品无卫生保障"),
    "ASSISTANCE": ("{b}独居老人生活困难，需要帮扶", "{b}居民因病致贫，申请救助",
                   "{b}残疾人家庭需要上门帮扶"),
    "EMERGENCY": ("{b}外墙瓷砖有脱落危险", "{s}窨井盖缺失，存在安全隐患",
                  "{s}行道树倾斜，有倒伏危险", "{b}楼道内电动车充电，存在火灾隐患"),
    "OTHER": ("{s}附近路灯不亮", "{s}路牌损坏", "{s}人行道地砖松动",
              "{b}周边流浪猫较多，影响居民生活"),
}  # fmt: skip
HOTSPOT_TEXTS = {
    "ILLEGAL_PARKING": ("{p}沿街机动车违停，占用非机动车道", "{p}商户门前车辆乱停，影响通行",
                        "{p}路口违停严重，公交车进出站困难", "{p}非机动车乱停，堵住人行道"),
    "NOISE": ("{p}凌晨卸货噪声扰民", "{p}夜间冷库机组噪声大", "{p}早市叫卖噪声扰民"),
    "MOSQUITOES": ("{p}绿化带积水，蚊虫孳生严重", "{p}景观水池积水发臭，蚊子很多",
                   "{p}蚊子多，希望尽快消杀"),
    "GREEN_LAND_VEGETABLES": ("{p}公共绿地被开垦种菜", "{p}绿化带里种满了蔬菜，还搭了架子",
                              "{p}居民在绿地施粪肥种菜，气味难闻"),
}  # fmt: skip
HANDLE_NOTES = {
    "ILLEGAL_PARKING": ("已联系车主挪车，并张贴告知单", "已对违停车辆开具告知单",
                        "已清理乱停共享单车"),
    "STREET_VENDING": ("已劝离流动摊贩", "已责令商户将店外物品收回"),
    "EXPOSED_GARBAGE": ("已清运", "已安排环卫作业车清运完毕"),
    "GARBAGE_SORTING": ("已督促物业整改，加强箱房值守", "已二次分拣，并宣传分类投放要求"),
    "ILLEGAL_CONSTRUCTION": ("已下发整改通知书，当事人已自行拆除", "已立案查处"),
    "GREEN_LAND_VEGETABLES": ("已铲除菜地并补种绿化", "已与种菜居民沟通，菜地已清理"),
    "FACILITY_REPAIR": ("已维修完毕", "已更换损坏部件"),
    "UTILITY_OUTAGE": ("已抢修，恢复供应", "故障已排除"),
    "NOISE": ("已上门劝导，噪声已停止", "已告知施工时间规定，当事人承诺整改"),
    "MOSQUITOES": ("已清理积水并灭蚊消杀", "已投放灭蚊药物"),
    "PROPERTY_DISPUTE": ("已约谈物业，督促整改", "已组织业主与物业协商"),
    "NEIGHBOUR_DISPUTE": ("已组织双方调解，达成一致", "已上门调解"),
    "FOOD_SAFETY": ("已现场检查，责令整改", "已立案调查"),
    "ASSISTANCE": ("已落实临时救助", "已协助申请相关补贴"),
    "EMERGENCY": ("已到场处置，排除险情", "已设置警示并完成抢修"),
}  # fmt: skip
CASE_NOTES = {
    "GRID_WHISTLE": "网格员巡查发现",
    "HOTLINE_12345": "12345市民服务热线工单",
    "RESIDENT_ONLINE": "居民网上报事",
    "VISIT": "走访中居民反映，升级为案件",
    "ACCEPT": ("已受理", "核实属实，予以受理", "已受理，转相关部门处置"),
    "HANDLE": ("已处置完毕", "已转交相关单位处理完毕"),
    "RETURN": ("现场复核仍未处置到位，退回重新处置", "居民反映问题反复出现，退回",
               "处置照片与现场不符，退回"),
    "VERIFY": ("现场核查，已处置到位", "已复核，问题已解决", "回访居民，确认已解决"),
    "CLOSE": ("已回访，居民满意，结案", "处置完毕，结案", "经核查已解决，予以结案"),
    "REJECT": ("经核实，不属于受理范围，已告知居民相关渠道", "现场核查未发现所述问题",
               "属民事纠纷，已建议通过调解或诉讼途径解决", "信息不全无法核实，反映人未补充"),
}  # fmt: skip
CASE_TABLES = TABLES[TABLES.index("grid_case") :]
CASE_ROWS = ("grid_case", "case_event")  # bulk: indexes and keys rebuilt after the copy
# The compounds a hotspot may be planted in, by their names' endings (see _COMPOUND_SUFFIX).
GARDEN_NAMES = re.compile(r"(花园|园|苑)\d+号")
ESTATE_NAMES = re.compile(r"(新村|小区)\d+号")


@dataclass(frozen=True)
class CaseHotspot:
    """A planted cluster: ``share`` of the subdistrict's cases of ``category`` are reported
    around (lon, lat), spread (Gaussian) ``sigma`` metres east-west and north-south."""

    subdistrict: str
    category: str
    place: str
    lon: float
    lat: float
    sigma: tuple[float, float]
    share: float


def _add_months(day: dt.date, months: int) -> dt.date:
    """The same day ``months`` later (or earlier), or the month's last day if it is shorter."""
    year, month = divmod(day.month - 1 + months, 12)
    year += day.year
    return dt.date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def case_months(today: dt.date) -> list[dt.date]:
    """The first days of the twelve months of cases that end yesterday, and today."""
    first = _add_months(today, -CASE_MONTHS)
    return [_add_months(first, k) for k in range(CASE_MONTHS)] + [today]


def _xy(lon: float, lat: float) -> tuple[float, float]:
    """Local metres of a point in degrees (the inverse of _point_hex's formula)."""
    return (lon - CENTRE_LON) * _MX, (lat - CENTRE_LAT) * _MY


def _lonlat(x: float, y: float) -> tuple[float, float]:
    return CENTRE_LON + x * _KX, CENTRE_LAT + y * _KY


HOTSPOT_MERCHANTS = """
SELECT s.code, m.code, m.name, m.category, m.address, ST_X(m.geom), ST_Y(m.geom)
FROM merchant m JOIN subdistrict s ON ST_Covers(s.geom, m.geom)
ORDER BY s.code, m.code
"""
HOTSPOT_BUILDINGS = """
SELECT left(b.code, 9), b.code, b.name, ST_X(c), ST_Y(c)
FROM building b CROSS JOIN LATERAL ST_Centroid(b.geom) c
WHERE b.name ~ '(花园|园|苑|新村|小区)[0-9]+号'
ORDER BY b.code
"""


def case_hotspots(cur: Any, seed: int) -> list[CaseHotspot]:
    """Where the demo plants its case hotspots, found from the database as the loader finds
    them, for each subdistrict: illegal parking in the middle of the commercial street (its
    merchants' median east-west, between their two sides), noise at the market farthest along
    it (a 菜场, else a supermarket, else a restaurant), mosquitoes in a garden compound and
    vegetables on the green of an old estate (新村, 小区), each compound at least
    HOTSPOT_APART_M from the other spots when one can be."""
    cur.execute(
        "SELECT left(b.code, 9), count(*) FROM household h JOIN building b ON b.id = h.building_id"
        " WHERE h.moved_out IS NULL GROUP BY 1"
    )
    return _hotspot_sites(cur, seed, dict(cur.fetchall()))


def _hotspot_sites(cur: Any, seed: int, households: dict[str, int]) -> list[CaseHotspot]:
    cur.execute(HOTSPOT_MERCHANTS)
    merchants: dict[str, list[tuple[Any, ...]]] = {}
    for sub, *rest in cur.fetchall():
        merchants.setdefault(sub, []).append(rest)
    cur.execute(HOTSPOT_BUILDINGS)
    compounds: dict[str, list[tuple[Any, ...]]] = {}
    for sub, *rest in cur.fetchall():
        compounds.setdefault(sub, []).append(rest)
    cur.execute("SELECT code FROM subdistrict ORDER BY code")
    found: list[CaseHotspot] = []
    for (sub,) in cur.fetchall():
        scale = min(1.0, HOTSPOT_FULL_SIZE / max(households.get(sub, 0), 1))
        spots: list[tuple[str, str, float, float]] = []  # category, place, x, y (metres)
        shops = [(code, name, cat, addr, *_xy(lon, lat)) for code, name, cat, addr, lon, lat
                 in merchants.get(sub, [])]  # fmt: skip
        if shops:
            xs = sorted(s[4] for s in shops)
            ys = [s[5] for s in shops]
            cx, cy = xs[len(xs) // 2], (min(ys) + max(ys)) / 2
            street = re.sub(r"\d+号$", "", shops[0][3])
            spots.append(("ILLEGAL_PARKING", f"{street}商业街", cx, cy))
            markets = [s for s in shops if s[2] == "超市"] or [s for s in shops if s[2] == "餐饮"]
            if markets:
                m = min(
                    markets,
                    key=lambda s: (not s[1].endswith("菜场"), -math.hypot(s[4] - cx, s[5] - cy)),
                )
                spots.append(("NOISE", m[1], m[4], m[5]))
        r = _rng(seed, f"case-hotspots:{sub}").random
        for category, names in (("MOSQUITOES", GARDEN_NAMES), ("GREEN_LAND_VEGETABLES",
                                                               ESTATE_NAMES)):  # fmt: skip
            options = [(code, name, *_xy(lon, lat)) for code, name, lon, lat
                       in compounds.get(sub, []) if names.search(name)]  # fmt: skip
            apart = [o for o in options
                     if all(math.hypot(o[2] - x, o[3] - y) >= HOTSPOT_APART_M
                            for _, _, x, y in spots)]  # fmt: skip
            options = apart or options
            if options:
                _, name, x, y = _pick(r, options)
                spots.append((category, re.sub(r"\d+号楼?$", "", name), x, y))
        for category, place, x, y in spots:
            share, sigma = HOTSPOTS[category]
            found.append(CaseHotspot(sub, category, place, *_lonlat(x, y), sigma, share * scale))
    return found


@dataclass(eq=False)
class _CaseCalendar:
    """A subdistrict's days, from ``base`` (day 0) on: the window is days [start, end), ``end``
    being today, whose midnight is the horizon no step passes. Times are minutes from day 0's
    midnight, local."""

    base: dt.date
    start: int
    end: int
    months: list[int]  # the window's month boundaries as day numbers, ``end`` last
    dates: list[str]
    years: list[int]
    month_of_year: list[int]
    weekdays: list[int]
    offsets: list[str]
    shifts: list[int]  # UTC offset in minutes
    working: list[bool]
    # Hours of the community office (a duty officer registers cases on days off), of its
    # dispatching and of the departments (working days only), of grid workers' checks.
    office: list[tuple[int, int] | None]
    department: list[tuple[int, int] | None]
    rounds: list[tuple[int, int] | None]


def _case_calendar(
    today: dt.date, zone: str, holidays: dict[dt.date, bool], earliest: dt.date | None
) -> _CaseCalendar:
    tz = ZoneInfo(zone)
    months = case_months(today)
    base = min(months[0], earliest) if earliest else months[0]
    total = (today - base).days + CASE_EXTRA_DAYS
    cal = _CaseCalendar(
        base=base, start=(months[0] - base).days, end=(today - base).days,
        months=[(m - base).days for m in months], dates=[], years=[], month_of_year=[],
        weekdays=[], offsets=[], shifts=[], working=[], office=[], department=[], rounds=[],
    )  # fmt: skip
    for k in range(total):
        day = base + dt.timedelta(days=k)
        # Offsets at noon, as the visits take them (DST changes fall at night).
        offset = dt.datetime(day.year, day.month, day.day, 12, tzinfo=tz).utcoffset()
        assert offset is not None
        minutes = int(offset.total_seconds()) // 60
        sign = "-" if minutes < 0 else "+"
        working = holidays.get(day, day.weekday() < 5)
        cal.dates.append(day.isoformat())
        cal.years.append(day.year)
        cal.month_of_year.append(day.month)
        cal.weekdays.append(day.weekday())
        cal.offsets.append(f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}")
        cal.shifts.append(minutes)
        cal.working.append(working)
        cal.office.append((510, 1050) if working else (540, 720))
        cal.department.append((510, 1050) if working else None)
        cal.rounds.append((510, 1080) if working else None)
    return cal


def _office_delay(r: Callable[[], float], quick: int, slow: int) -> int:
    """Minutes before the office's next step: often within ``quick``, else up to ``slow`` (a
    check on the spot, a unit to agree with, a resident to call back)."""
    if r() < 0.45:
        return 5 + int(r() * quick)
    return quick + int(r() * (slow - quick))


def _in_hours(hours: list[tuple[int, int] | None], t: int, r: Callable[[], float]) -> int:
    """``t``, or a little after the next opening if it falls outside ``hours``."""
    d, m = divmod(t, 1440)
    if d >= len(hours) - 8:
        return t
    h = hours[d]
    if h is not None:
        if m < h[0]:
            return d * 1440 + h[0] + int(r() * 25)
        if m < h[1]:
            return t
    d += 1
    while hours[d] is None:
        d += 1
    return d * 1440 + hours[d][0] + int(r() * 25)  # type: ignore[index]


@dataclass(eq=False)
class _CaseGrid:
    code: str
    # Micro-grids: (code, x0, x1, y0, y1 (metres), a box?, fallback x, y, building name,
    # street (the address up to the lane), building x0, x1, y0, y1)
    micros: list[tuple[Any, ...]]
    cum: list[float]
    weight: float
    workers: list[str]
    leaders: list[str]
    office: list[str]  # the community's staff


@dataclass(eq=False)
class _CaseArea:
    code: str
    cal: _CaseCalendar
    households: int
    grids: list[_CaseGrid]
    grid_cum: list[float]
    center: list[str]
    departments: dict[str, list[str]]
    counts: dict[str, list[int]] = field(default_factory=dict)
    # category → (hotspot, its located points: x, y, EWKB hex, grid, micro-grid)
    hotspots: dict[str, tuple[CaseHotspot, list[tuple[Any, ...]]]] = field(default_factory=dict)


class _Case:
    __slots__ = (
        "area",
        "category",
        "day",
        "deadline",
        "demand",
        "external",
        "grid",
        "hex",
        "id",
        "key",
        "merged",
        "micro",
        "name",
        "number",
        "phone",
        "priority",
        "reporter",
        "role",
        "source",
        "source_category",
        "steps",
        "text",
        "unit",
        "visit",
        "x",
        "y",
    )  # fmt: skip

    def __init__(self, id: str, area: _CaseArea, grid: _CaseGrid, source: str) -> None:
        self.id, self.area, self.grid, self.source = id, area, grid, source
        self.source_category = self.name = self.phone = self.visit = self.demand = NULL
        self.external = self.reporter = NULL
        self.merged: _Case | None = None
        self.deadline: tuple[int, int] | None = None
        self.number = ""


CASE_MICRO_GRIDS = """
SELECT m.code, g.code, ST_XMin(m.geom), ST_XMax(m.geom), ST_YMin(m.geom), ST_YMax(m.geom),
       ST_Equals(m.geom, ST_Envelope(m.geom)), ST_X(p), ST_Y(p), b.name, b.address,
       ST_XMin(b.geom), ST_XMax(b.geom), ST_YMin(b.geom), ST_YMax(b.geom), coalesce(h.n, 0)
FROM micro_grid m
JOIN grid g ON g.id = m.grid_id
CROSS JOIN LATERAL ST_PointOnSurface(m.geom) p
LEFT JOIN LATERAL (
    SELECT b.id, b.name, b.address, b.geom FROM building b WHERE b.micro_grid_id = m.id
    ORDER BY b.code LIMIT 1
) b ON true
LEFT JOIN (
    SELECT building_id, count(*) AS n FROM household WHERE moved_out IS NULL GROUP BY 1
) h ON h.building_id = b.id
ORDER BY m.code
"""
# Points located as the app locates a case: the grid, then the micro-grid, covering it (the
# first by code on a shared edge).
CASE_LOCATE = """
SELECT p.i, m.code, m.grid
FROM unnest(%s::float8[], %s::float8[]) WITH ORDINALITY AS p(lon, lat, i)
CROSS JOIN LATERAL (
    SELECT m.code, g.code FROM micro_grid m JOIN grid g ON g.id = m.grid_id
    WHERE ST_Covers(m.geom, ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326))
    ORDER BY m.code LIMIT 1
) m (code, grid)
ORDER BY p.i
"""
ESCALATED_DEMANDS = """
SELECT d.id::text, d.visit_id::text, d.household_code, d.text, d.category, d.raised_at,
       d.closed_at, w.code, lower(w.role::text), ST_X(h.location), ST_Y(h.location)
FROM demand d
JOIN household h ON h.id = d.household_id
LEFT JOIN visit v ON v.id = d.visit_id
LEFT JOIN worker w ON w.id = v.worker_id
WHERE d.resolution = 'ESCALATED'
  AND NOT EXISTS (SELECT 1 FROM grid_case c WHERE c.demand_id = d.id)
ORDER BY d.raised_at, d.id
"""


def _street_of(address: str | None) -> str:
    """The lane of an address (北京路50弄3号 → 北京路50弄), for a case on the street by it."""
    if not address:
        return "小区"
    cut = address.find("弄")
    return address[: cut + 1] if cut > 0 else re.sub(r"\d+号$", "", address)


def _cumulative(weights: Sequence[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def _draw(r: Callable[[], float], cum: list[float]) -> int:
    """An index drawn with the weights whose running sums are ``cum`` (zero weights never)."""
    return bisect.bisect(cum, r() * cum[-1])


def _department_staff(ctx: _Context) -> None:
    """Two department staff in each subdistrict for each unit of the catalogue that has none
    there (version 1 staffed six units; the catalogue also dispatches to U-GREEN and U-POLICE),
    numbered on from the subdistrict's last department number."""
    cur = ctx.cur
    cur.execute("SELECT code FROM unit ORDER BY code")
    units = [u for (u,) in cur.fetchall()]
    cur.execute(
        "SELECT s.code, s.id::text, w.unit_code, w.code FROM subdistrict s"
        " LEFT JOIN worker w ON w.subdistrict_id = s.id AND w.role = 'DEPARTMENT'"
        " ORDER BY s.code, w.code"
    )
    staffed: dict[tuple[str, str], bool] = {}
    last: dict[str, int] = {}
    ids: dict[str, str] = {}
    for sub, sid, unit, code in cur.fetchall():
        ids[sub] = sid
        last.setdefault(sub, 0)
        if code is not None:
            staffed[(sub, unit)] = True
            tail = code.rsplit("-", 1)[-1]
            if tail.isdigit():
                last[sub] = max(last[sub], int(tail))
    rng = _rng(ctx.seed, "case-departments")
    r = rng.random
    people = _People(rng)
    rows: list[str] = []
    for sub in sorted(ids):
        for unit in units:
            if (sub, unit) in staffed:
                continue
            for _ in range(2):
                last[sub] += 1
                gender = "F" if r() < 0.6 else "M"
                name = people.surname() + people.given(gender, _int_between(r, 1965, 2000))
                rows.append(
                    f"{_uuid(rng)}\tJA{sub[-3:]}-{WORKER_TAGS['DEPARTMENT']}-{last[sub]:04d}\t"
                    f"{name}\t{people.phone()}\tDEPARTMENT\t{ids[sub]}\t{NULL}\t{unit}\n"
                )
    ctx.copy("worker", rows)


class _CaseHistory:
    """Twelve months of cases ending yesterday, generated day by day (so they are numbered in
    the order they were reported, per local year, as they stream out) from one random stream
    keyed by the seed and the first day: the same seed on the same day gives the same rows."""

    def __init__(self, cur: Any, seed: int, subdistricts: list[tuple[Any, ...]]) -> None:
        self.seed = seed
        cur.execute("SELECT day, working FROM holiday")
        holidays = dict(cur.fetchall())
        cur.execute(
            "SELECT code, default_unit, time_limit, time_unit FROM case_category WHERE active"
            " ORDER BY code"
        )
        self.limits = {code: (unit, n, kind) for code, unit, n, kind in cur.fetchall()}
        cur.execute("SELECT code, name FROM unit")
        self.unit_names = dict(cur.fetchall())
        cur.execute("SELECT year, last FROM case_counter")
        self.numbers: dict[int, int] = dict(cur.fetchall())
        self.first_numbers = dict(self.numbers)
        cur.execute(ESCALATED_DEMANDS)
        demands = cur.fetchall()
        earliest: dict[str, dt.date] = {}
        zones = {code: zone for code, _, zone, _ in subdistricts}
        located = []
        for d in demands:
            sub = d[2][:9]
            if sub not in zones:
                continue
            tz = ZoneInfo(zones[sub])
            raised, closed = d[5].astimezone(tz), d[6].astimezone(tz) if d[6] else None
            located.append((sub, raised, closed, d))
            if sub not in earliest or raised.date() < earliest[sub]:
                earliest[sub] = raised.date()
        self.areas: dict[str, _CaseArea] = {}
        home = min(subdistricts, key=lambda s: (s[0] != HOME_SUBDISTRICT, s[0]))
        self.key_day = case_months(home[3])[0]
        self.r = _rng(seed, f"cases:{self.key_day.isoformat()}").random
        self.ids = _rng(seed, f"case-ids:{self.key_day.isoformat()}")
        self.people = _People(_rng(seed, f"case-people:{self.key_day.isoformat()}"))
        for code, _sid, zone, today in subdistricts:
            cal = _case_calendar(today, zone, holidays, earliest.get(code))
            self.areas[code] = _CaseArea(code, cal, 0, [], [], [], {})
        # Each area's offset from the home calendar's day numbers (zones may differ by a day).
        self.shift = {code: (a.cal.base - self.areas[home[0]].cal.base).days
                      for code, a in self.areas.items()}  # fmt: skip
        self._grids(cur, seed)
        self._staff(cur)
        self._volumes()
        self._hotspots(cur, seed)
        self.category_tables = self._category_tables()
        # Days (in home numbering) → cases waiting for them: escalated demands, duplicates.
        self.pending: dict[int, list[Any]] = {}
        for sub, raised, closed, d in located:
            area = self.areas[sub]
            day = (raised.date() - area.cal.base).days + self.shift[sub]
            self.pending.setdefault(day, []).append((area, raised, closed, d))
        # The days to go through, in home numbering: from the earliest area's first to today.
        self.first_day = min(self.shift.values())
        self.days = max(a.cal.end + self.shift[c] for c, a in self.areas.items()) + 1
        self.serials: dict[str, int] = {}

    def _grids(self, cur: Any, seed: int) -> None:
        cur.execute(CASE_MICRO_GRIDS)
        grids: dict[str, _CaseGrid] = {}
        weights: dict[str, list[float]] = {}
        for row in cur.fetchall():
            code, grid, x0, x1, y0, y1, box, px, py, bname, address, *bb, n = row
            if grid[:9] not in self.areas:
                continue
            g = grids.get(grid)
            if g is None:
                g = grids[grid] = _CaseGrid(grid, [], [], 0.0, [], [], [])
                weights[grid] = []
            mx0, my0 = _xy(x0, y0)
            mx1, my1 = _xy(x1, y1)
            fx, fy = _xy(px, py)
            if bb[0] is None:  # no building: its middle
                bx0 = bx1 = (mx0 + mx1) / 2
                by0 = by1 = (my0 + my1) / 2
            else:
                (bx0, by0), (bx1, by1) = _xy(bb[0], bb[2]), _xy(bb[1], bb[3])
            box = bool(box) and mx1 - mx0 > 2 and my1 - my0 > 2
            g.micros.append((code, mx0, mx1, my0, my1, box, fx, fy, bname or f"{code}微网格",
                             _street_of(address), bx0, bx1, by0, by1))  # fmt: skip
            weights[grid].append(n + 2.0)
            self.areas[grid[:9]].households += n
        # Some grids see more trouble than others (old lanes, a market, a building site).
        r = _rng(seed, "case-grids").random
        for code in sorted(grids):
            g = grids[code]
            g.cum = _cumulative(weights[code])
            g.weight = g.cum[-1] * (0.6 + r())
            self.areas[code[:9]].grids.append(g)
        for area in self.areas.values():
            area.grid_cum = _cumulative([g.weight for g in area.grids])
        self.grids = grids

    def _staff(self, cur: Any) -> None:
        for code, team in _teams(cur, self.seed).items():
            g = self.grids.get(code)
            if g is not None:
                g.workers = [c for _, c in team.workers]
                g.leaders = [c for _, c in team.leaders]
        cur.execute(
            "SELECT c.code, w.code FROM worker w JOIN community c ON c.id = w.community_id"
            " WHERE w.role = 'COMMUNITY' ORDER BY w.code"
        )
        office: dict[str, list[str]] = {}
        for comm, code in cur.fetchall():
            office.setdefault(comm, []).append(code)
        for g in self.grids.values():
            g.office = office.get(g.code[:12], [])
        cur.execute(
            "SELECT s.code, w.role::text, w.unit_code, w.code FROM worker w"
            " JOIN subdistrict s ON s.id = w.subdistrict_id"
            " WHERE w.role IN ('GRID_CENTER', 'DEPARTMENT') ORDER BY w.code"
        )
        for sub, role, unit, code in cur.fetchall():
            area = self.areas.get(sub)
            if area is None:
                continue
            if role == "GRID_CENTER":
                area.center.append(code)
            else:
                area.departments.setdefault(unit, []).append(code)

    def _volumes(self) -> None:
        """Each area's cases of each source on each day of the window: the month's total from
        its rate, spread over its days by weekday with some day-to-day chance."""
        r = _rng(self.seed, f"case-volumes:{self.key_day.isoformat()}").random
        for code in sorted(self.areas):
            area = self.areas[code]
            cal = area.cal
            for source, (low, high) in CASE_RATES.items():
                counts = [0] * len(cal.dates)
                weekdays = CASE_WEEKDAYS[source]
                for j in range(CASE_MONTHS):
                    a, b = cal.months[j], cal.months[j + 1]
                    rate = low * (high / low) ** (j / (CASE_MONTHS - 1))
                    n = round(rate * area.households / 1000 * (b - a) / 30.4375)
                    spread = [weekdays[cal.weekdays[d]] * (0.6 + 0.8 * r()) for d in range(a, b)]
                    for d, k in zip(range(a, b), _apportion(n, spread), strict=True):
                        counts[d] = k
                area.counts[source] = counts

    def _hotspots(self, cur: Any, seed: int) -> None:
        households = {code: a.households for code, a in self.areas.items()}
        for spot in _hotspot_sites(cur, seed, households):
            area = self.areas.get(spot.subdistrict)
            if area is None or spot.category not in self.limits or spot.share <= 0:
                continue
            r = _rng(seed, f"case-pool:{spot.subdistrict}:{spot.category}").random
            cx, cy = _xy(spot.lon, spot.lat)
            points = []
            for _ in range(HOTSPOT_POOL):
                # Box-Muller from random(), whose algorithm is promised to stay.
                radius = math.sqrt(-2.0 * math.log(1.0 - r()))
                angle = 2 * math.pi * r()
                x = cx + spot.sigma[0] * radius * math.cos(angle)
                y = cy + spot.sigma[1] * radius * math.sin(angle)
                points.append((x, y, *_lonlat(x, y)))
            cur.execute(CASE_LOCATE, ([p[2] for p in points], [p[3] for p in points]))
            pool = []
            for i, micro, grid in cur.fetchall():
                x, y, lon, lat = points[i - 1]
                if grid in self.grids and grid.startswith(area.code):
                    hexed = _POINT(1, _EWKB_POINT, SRID, lon, lat).hex()
                    pool.append((x, y, hexed, self.grids[grid], micro))
            if pool:
                area.hotspots[spot.category] = (spot, pool)

    def _category_tables(self) -> dict[tuple[str, int], tuple[list[str], list[float]]]:
        tables = {}
        for s, source in enumerate(CASE_RATES):
            for month in range(1, 13):
                codes, weights = [], []
                for code, (*by_source, _, season) in CASE_CATEGORIES.items():
                    if code not in self.limits:
                        continue
                    factor = SEASONS[season][month - 1] if season else 1.0
                    if by_source[s] * factor > 0:
                        codes.append(code)
                        weights.append(by_source[s] * factor)
                tables[(source, month)] = (codes, _cumulative(weights))
        return tables

    # ----------------------------------------------------------------------------------------

    def rows(self, stop: threading.Event) -> Iterator[tuple[int, list[str], list[str]]]:
        """(days done, grid_case rows, case_event rows), a few days at a time."""
        cases: list[str] = []
        events: list[str] = []
        done = 0
        areas = [self.areas[c] for c in sorted(self.areas)]
        for day in range(self.first_day, self.days):
            if stop.is_set():
                return
            bucket: list[_Case] = []
            for item in self.pending.pop(day, ()):
                bucket.append(item if isinstance(item, _Case) else self._escalated(*item))
            for area in areas:
                d = day - self.shift[area.code]
                if area.cal.start <= d < area.cal.end:
                    for source in CASE_RATES:
                        for _ in range(area.counts[source][d]):
                            case = self._reported(area, source, d)
                            if case is not None:
                                bucket.append(case)
            bucket.extend(self.pending.pop(day, ()))  # the same day's second reports
            bucket.sort(key=lambda c: c.key)
            for case in bucket:
                self._number(case)
            for case in bucket:
                self._format(case, cases, events)
            done += 1
            if len(events) >= CASE_CHUNK_EVENTS:
                yield done, cases, events
                cases, events, done = [], [], 0
        if cases or done:
            yield done, cases, events

    def _number(self, case: _Case) -> None:
        cal = case.area.cal
        year = cal.years[case.day]
        n = self.numbers.get(year, 0) + 1
        self.numbers[year] = n
        case.number = f"{year}-{n:06d}"
        if case.source == "HOTLINE_12345":
            date = cal.dates[case.day].replace("-", "")
            serial = self.serials.get(date)
            if serial is None:
                serial = 100 + int(self.r() * 900)
            else:  # the hotline's numbers run across the city: gaps between this street's
                serial += 1 + int(self.r() * 40)
            self.serials[date] = serial
            case.external = f"12345-{date}-{serial:06d}"

    # ----------------------------------------------------------------------------------------

    def _office(self, g: _CaseGrid) -> tuple[str, str]:
        """Who in the office takes a step: the community's staff, now and then the center's."""
        r = self.r
        center = g.code[:9] in self.areas and self.areas[g.code[:9]].center
        if g.office and (not center or r() < 0.9):
            return g.office[int(r() * len(g.office))], "community"
        if center:
            return center[int(r() * len(center))], "grid_center"
        return NULL, "community"

    def _center(self, g: _CaseGrid) -> tuple[str, str]:
        """The grid center's staff on duty (for urgent cases), else the office's."""
        center = self.areas[g.code[:9]].center if g.code[:9] in self.areas else []
        if center:
            return center[int(self.r() * len(center))], "grid_center"
        return self._office(g)

    def _department(self, area: _CaseArea, unit: str) -> str:
        staff = area.departments.get(unit)
        return staff[int(self.r() * len(staff))] if staff else NULL

    def _grid_worker(self, g: _CaseGrid) -> tuple[str, str]:
        if g.workers:
            return g.workers[int(self.r() * len(g.workers))], "grid_worker"
        return self._office(g)

    def _resident(self, full: bool) -> tuple[str, str]:
        r, people = self.r, self.people
        x = 1.0 if full else r()
        if x < 0.1:
            name = NULL  # an anonymous caller
        elif x < 0.55:
            name = people.surname() + ("先生" if r() < 0.45 else "女士")
        else:
            gender = "F" if r() < 0.55 else "M"
            name = people.surname() + people.given(gender, _int_between(r, 1940, 2002))
        return name, people.phone()

    def _place(self, micro: tuple[Any, ...], kind: str) -> tuple[float, float]:
        """A point inside the micro-grid (0.8 m from its edges): on the street or the lane by
        its edge, by its building, or at it."""
        _, x0, x1, y0, y1, box, fx, fy, _, _, bx0, bx1, by0, by1 = micro
        if not box:
            return fx, fy
        r = self.r
        if kind == "street":
            depth = 1.5 + 5.0 * r()
            side = int(r() * 4)
            if side < 2:
                x = x0 + depth if side == 0 else x1 - depth
                y = y0 + (y1 - y0) * r()
            else:
                y = y0 + depth if side == 2 else y1 - depth
                x = x0 + (x1 - x0) * r()
        elif kind == "near":
            angle = 2 * math.pi * r()
            reach = max(bx1 - bx0, by1 - by0) / 2 + 2.0 + 8.0 * r()
            x = (bx0 + bx1) / 2 + reach * math.cos(angle)
            y = (by0 + by1) / 2 + reach * math.sin(angle)
        else:
            x = bx0 + (bx1 - bx0) * (0.2 + 0.6 * r())
            y = by0 + (by1 - by0) * (0.2 + 0.6 * r())
        return min(max(x, x0 + 0.8), x1 - 0.8), min(max(y, y0 + 0.8), y1 - 0.8)

    def _reporter(self, case: _Case) -> None:
        r = self.r
        g = case.grid
        if case.source == "GRID_WHISTLE":
            if g.leaders and r() < 0.25:
                case.reporter, case.role = g.leaders[int(r() * len(g.leaders))], "micro_grid_leader"
            else:
                case.reporter, case.role = self._grid_worker(g)
        elif case.source == "HOTLINE_12345":
            # The grid center imports the 12345 work order; the caller is a resident.
            center = case.area.center
            case.reporter = center[int(r() * len(center))] if center else NULL
            case.role = "grid_center"
            case.name, case.phone = self._resident(False)
        else:
            case.reporter, case.role = NULL, "public"
            case.name, case.phone = self._resident(True)

    def _reported(self, area: _CaseArea, source: str, day: int) -> _Case | None:
        """A new case of ``source`` reported on ``day`` in ``area``."""
        r = self.r
        cal = area.cal
        codes, cum = self.category_tables[(source, cal.month_of_year[day])]
        if not codes or not area.grids:
            return None
        category = codes[_draw(r, cum)]
        hours = "NOISE" if category == "NOISE" and source != "GRID_WHISTLE" else source
        hour = _draw(r, _HOUR_CUM[hours])
        t0 = day * 1440 + hour * 60 + int(r() * 60)
        spot = area.hotspots.get(category)
        if spot is not None and r() < spot[0].share:
            x, y, hexed, g, micro = _pick(r, spot[1])
            text = _pick(r, HOTSPOT_TEXTS[category]).format(p=spot[0].place)
            where: tuple[Any, ...] | None = None
        else:
            g = area.grids[_draw(r, area.grid_cum)]
            where = g.micros[_draw(r, g.cum)]
            micro = where[0]
            x, y = self._place(where, CASE_CATEGORIES[category][3])
            hexed = _point_hex(x, y)
            text = _pick(r, CASE_TEXTS[category]).format(b=where[8], s=where[9])
        case = _Case(_uuid(self.ids), area, g, source)
        case.category, case.text, case.hex, case.x, case.y = category, text, hexed, x, y
        case.micro = (micro, where)
        case.unit = self.limits[category][0]
        urgent = URGENT_RATE.get(category, URGENT_OTHERWISE)
        case.priority = "URGENT" if r() < urgent else "NORMAL"
        self._reporter(case)
        sec = int(r() * 60)
        self._when(case, t0, sec)
        reject = r() < REJECT_RATE[source]
        self._timeline(case, t0, sec, reject, self._fate(case, t0))
        if not reject and r() < DUPLICATE_RATE:
            self._duplicate(case)
        return case

    def _when(self, case: _Case, t: int, sec: int) -> None:
        cal = case.area.cal
        day = t // 1440
        case.day = day
        instant = (cal.base.toordinal() + day) * 1440 + t % 1440 - cal.shifts[day]
        case.key = (instant * 60 + sec, case.id)

    def _fate(self, case: _Case, t0: int) -> str | None:
        """Where a case stops for good (never handled, left returned), where a recent one is
        waiting, or None: it goes all the way unless today comes first."""
        r = self.r
        x = r()
        if x < STUCK_RATE:
            return "DISPATCHED"
        if x < STUCK_RATE * 1.35:
            return "RETURNED"
        if case.area.cal.end * 1440 - t0 < BACKLOG_DAYS * 1440 and r() < BACKLOG_RATE:
            return _pick(r, ("REPORTED", "ACCEPTED", "HANDLED", "VERIFIED"))
        return None

    def _timeline(
        self, case: _Case, t0: int, sec: int, reject: bool, stop: str | None,
        horizon: bool = True,
    ) -> None:  # fmt: skip
        """The case's steps from its report on: office hours for the office, the departments'
        working days for categories with working-day limits, the deadline from the catalogue,
        some handled late, some returned; cut at today's midnight (the later steps are still
        to come) or where ``stop`` leaves it."""
        r = self.r
        cal = case.area.cal
        g = case.grid
        steps: list[tuple[Any, ...]] = [
            (t0, sec, "REPORT", NULL, "REPORTED", case.reporter, case.role, NULL,
             CASE_NOTES[case.source])
        ]  # fmt: skip

        def step(t: int, action: str, frm: str, to: str, who: tuple[str, str],
                 unit: str = NULL, note: str = NULL) -> int:  # fmt: skip
            t = max(t, steps[-1][0] + 1)
            steps.append((t, int(r() * 60), action, frm, to, who[0], who[1], unit, note))
            return t

        # Urgent cases go through the grid center, on duty day and night, within minutes.
        urgent = case.priority == "URGENT"
        if urgent:
            t = t0 + 3 + int(r() * 20)
        else:
            t = _in_hours(cal.office, t0 + _office_delay(r, 120, 30 * 60), r)
        office = self._center if urgent else self._office
        if reject:
            step(t, "REJECT", "REPORTED", "REJECTED", office(g), NULL,
                 _pick(r, CASE_NOTES["REJECT"]))  # fmt: skip
            case.steps = self._cut(case, steps, horizon)
            return
        t = step(t, "ACCEPT", "REPORTED", "ACCEPTED", office(g), NULL,
                 _pick(r, CASE_NOTES["ACCEPT"]))  # fmt: skip
        if urgent:
            t += 2 + int(r() * 13)
        else:  # dispatched on a working day, at once or after a check on the spot
            t = _in_hours(cal.department, t + _office_delay(r, 120, 72 * 60), r)
        unit = case.unit
        t = step(t, "DISPATCH", "ACCEPTED", "DISPATCHED", office(g), unit,
                 f"派遣至{self.unit_names.get(unit, unit)}")  # fmt: skip
        dispatched = len(steps) - 1
        _, limit, kind = self.limits[case.category]
        late = r() < LATE_RATE
        deadline = self._deadline(case, t, steps[-1][1])
        if kind == "HOURS":
            th = t + 5 + int(limit * 60 * (0.1 + 0.8 * r() ** 1.5))
            if late:
                th = deadline[0] + 15 + int(r() * limit * 30)
        else:
            th = _in_hours(cal.department, t + 60 + int((deadline[0] - t) * 0.7 * r() ** 2), r)
            if late:
                th = _in_hours(cal.department, deadline[0] + 60 + int(r() * 4 * 1440), r)
        handle = HANDLE_NOTES.get(case.category, CASE_NOTES["HANDLE"])
        returns = 0
        if r() < RETURN_RATE:
            returns = 2 if r() < RETURN_TWICE else 1
        if stop == "DISPATCHED":
            returns = -1
        elif stop == "RETURNED":
            returns = max(returns, 1)
        if returns >= 0:
            department = (self._department(case.area, unit), "department")
            t = step(th, "HANDLE", "DISPATCHED", "HANDLED", department, unit, _pick(r, handle))
            for k in range(returns):
                tr = _in_hours(cal.rounds, t + 60 + int(r() * 1.5 * 1440), r)
                t = step(tr, "RETURN", "HANDLED", "RETURNED", self._grid_worker(g), NULL,
                         _pick(r, CASE_NOTES["RETURN"]))  # fmt: skip
                if stop == "RETURNED" and k == returns - 1:
                    break
                if kind == "HOURS":  # round the clock, within the limit
                    th = t + 30 + int(r() * limit * 60)
                else:
                    th = _in_hours(cal.department, t + 120 + int(r() * 2.5 * 1440), r)
                department = (self._department(case.area, unit), "department")
                t = step(th, "HANDLE", "RETURNED", "HANDLED", department, unit, _pick(r, handle))
            if stop not in ("DISPATCHED", "RETURNED"):
                t = step(_in_hours(cal.rounds, t + 30 + int(r() ** 2 * 2.5 * 1440), r), "VERIFY",
                         "HANDLED", "VERIFIED", self._grid_worker(g), NULL,
                         _pick(r, CASE_NOTES["VERIFY"]))  # fmt: skip
                # Closed once the resident is called back, on a working day.
                t = _in_hours(cal.department, t + 10 + int(r() ** 2 * 2880), r)
                step(t, "CLOSE", "VERIFIED", "CLOSED", self._office(g), NULL,
                     _pick(r, CASE_NOTES["CLOSE"]))  # fmt: skip
        if stop in ("REPORTED", "ACCEPTED", "HANDLED", "VERIFIED"):  # waiting there
            steps = steps[: max(k for k, s in enumerate(steps) if s[4] == stop) + 1]
        steps = self._cut(case, steps, horizon)
        if len(steps) > dispatched:
            case.deadline = deadline
        case.steps = steps

    @staticmethod
    def _cut(case: _Case, steps: list[tuple[Any, ...]], horizon: bool) -> list[tuple[Any, ...]]:
        """The steps taken before today's midnight (the report always): the rest are to come."""
        if not horizon:
            return steps
        end = case.area.cal.end * 1440
        kept = 1
        while kept < len(steps) and steps[kept][0] < end:
            kept += 1
        return steps[:kept]

    def _deadline(self, case: _Case, t: int, sec: int) -> tuple[int, int]:
        """From a dispatch at ``t``: the category's limit in hours, or the end (24:00 local) of
        the n-th working day after the dispatch day (the ``holiday`` rows counted)."""
        _, limit, kind = self.limits[case.category]
        if kind == "HOURS":
            return t + limit * 60, sec
        working = case.area.cal.working
        d, left = t // 1440, limit
        while left:
            d += 1
            if d >= len(working) - 1 or working[d]:
                left -= 1
        return (d + 1) * 1440, 0

    def _duplicate(self, first: _Case) -> None:
        """The same problem reported again by someone else nearby a little later, merged into
        the first case by the office while that one is still open."""
        r = self.r
        cal = first.area.cal
        steps = first.steps
        limit = cal.end * 1440
        if steps[-1][4] == "CLOSED":
            limit = min(limit, steps[-1][0])
        limit -= 1
        t = first.steps[0][0] + 60 + int(r() * 48 * 60)
        accept = r() < 0.4
        ta = _in_hours(cal.office, t + 5 + int(r() * 120), r)
        tm = _in_hours(cal.office, (ta if accept else t) + 10 + int(r() * 480), r)
        if tm >= limit:
            accept, tm = False, t + 5 + int(r() * 30)
        if tm >= limit:
            return
        case = _Case(_uuid(self.ids), first.area, first.grid, first.source)
        case.category, case.unit, case.priority = first.category, first.unit, first.priority
        where = first.micro[1]
        x = first.x + (r() - 0.5) * 40.0
        y = first.y + (r() - 0.5) * 40.0
        if where is not None and where[5]:
            x = min(max(x, where[1] + 0.8), where[2] - 0.8)
            y = min(max(y, where[3] + 0.8), where[4] - 0.8)
            case.hex = _point_hex(x, y)
        else:
            x, y, case.hex = first.x, first.y, first.hex
        case.x, case.y, case.micro = x, y, first.micro
        case.text = first.text
        self._reporter(case)
        sec = int(r() * 60)
        self._when(case, t, sec)
        steps = [(t, sec, "REPORT", NULL, "REPORTED", case.reporter, case.role, NULL,
                  CASE_NOTES[case.source])]  # fmt: skip
        state = "REPORTED"
        if accept:
            who = self._office(first.grid)
            steps.append((max(ta, t + 1), int(r() * 60), "ACCEPT", "REPORTED", "ACCEPTED",
                          *who, NULL, _pick(r, CASE_NOTES["ACCEPT"])))  # fmt: skip
            state = "ACCEPTED"
        who = self._office(first.grid)
        steps.append((max(tm, steps[-1][0] + 1), int(r() * 60), "MERGE", state, "CLOSED", *who,
                      NULL, None))  # fmt: skip
        case.steps = steps
        case.merged = first
        day = case.day + self.shift[first.area.code]
        self.pending.setdefault(day, []).append(case)

    def _escalated(
        self, area: _CaseArea, raised: dt.datetime, closed: dt.datetime | None,
        demand: tuple[Any, ...],
    ) -> _Case:  # fmt: skip
        """The case of a demand escalated on a visit, as the app opens it: reported by the
        visitor at the visit's time at the household's home, its text the demand's; closed when
        the demand was (or rejected then), else still open (old ones stuck with a department)."""
        r = self.r
        did, vid, hcode, text, category, _, _, wcode, role, lon, lat = demand
        cal = area.cal
        g = self.grids.get(hcode[:15]) or area.grids[0]
        case = _Case(_uuid(self.ids), area, g, "VISIT")
        code = DEMAND_CATEGORY_CODES.get(category or "", category)
        if code not in self.limits:
            code = "OTHER" if "OTHER" in self.limits else next(iter(self.limits))
            case.source_category = category or NULL
        case.category, case.text = code, text
        case.hex = _POINT(1, _EWKB_POINT, SRID, lon, lat).hex()
        case.x, case.y = _xy(lon, lat)
        case.micro = (hcode[:18], None)
        case.unit = self.limits[code][0]
        case.priority = "URGENT" if r() < URGENT_RATE.get(code, URGENT_OTHERWISE) else "NORMAL"
        case.reporter, case.role = wcode or NULL, role or "grid_worker"
        case.visit, case.demand = vid or NULL, did
        day = (raised.date() - cal.base).days
        t0 = day * 1440 + raised.hour * 60 + raised.minute
        self._when(case, t0, raised.second)
        if closed is None:
            recent = cal.end * 1440 - t0 < 10 * 1440
            stop = None if recent else _weighted(
                r, (("DISPATCHED", 0.55), ("RETURNED", 0.25), ("HANDLED", 0.2))
            )  # fmt: skip
            self._timeline(case, t0, raised.second, False, stop)
            if case.steps[-1][4] == "CLOSED":  # recent, and it would have closed: not yet
                case.steps.pop()
            return case
        end = (closed.date() - cal.base).days * 1440 + closed.hour * 60 + closed.minute
        reject = r() < REJECT_RATE["VISIT"] or end - t0 < 12
        self._timeline(case, t0, raised.second, reject, None, horizon=False)
        steps = case.steps
        if steps[-1][4] not in ("CLOSED", "REJECTED"):  # cannot happen without a stop
            return case
        # Squeeze (or stretch) the steps into the time between the visit and the closing.
        span, natural = end - t0, steps[-1][0] - t0
        out = [steps[0]]
        n = len(steps)
        for i, s in enumerate(steps[1:-1], start=1):
            t = t0 + round((s[0] - t0) * span / max(natural, 1))
            t = min(max(t, out[-1][0] + 1), end - (n - 1 - i))
            out.append((t, *s[1:]))
        out.append((end, closed.second, *steps[-1][2:]))
        for s in out:
            if s[2] == "DISPATCH":
                case.deadline = self._deadline(case, s[0], s[1])
        case.steps = out
        return case

    # ----------------------------------------------------------------------------------------

    def _format(self, case: _Case, cases: list[str], events: list[str]) -> None:
        cal = case.area.cal
        dates, offsets = cal.dates, cal.offsets

        def at(t: int, sec: int) -> str:
            d = t // 1440
            return f"{dates[d]} {_HM[t % 1440]}{_SS[sec]}{offsets[d]}"

        dispatched = handled = closed = NULL
        returned = 0
        cid = case.id
        # The events' ids: one random UUID for the case, its last byte the step's number.
        prefix = _uuid(self.ids)[:-2]
        for k, (t, sec, action, frm, to, worker, role, unit, note) in enumerate(case.steps):
            when = at(t, sec)
            if action == "DISPATCH":
                dispatched = when
            elif action == "HANDLE":
                handled = when
            elif action == "RETURN":
                returned += 1
            elif action in ("CLOSE", "MERGE"):
                closed = when
            if action == "MERGE":
                assert case.merged is not None
                note = f"与{case.merged.number}为同一问题，重复上报，已并入"
            events.append(
                f"{prefix}{_BYTE[k]}\t{cid}\t{when}\t{action}\t{frm}\t{to}\t{worker}\t{role}\t"
                f"{unit}\t{note}\n"
            )
        deadline = NULL
        if case.deadline is not None and dispatched is not NULL:
            deadline = at(*case.deadline)
        merged = case.merged.id if case.merged is not None else NULL
        micro = case.micro[0]
        t0, sec0 = case.steps[0][0], case.steps[0][1]
        cases.append(
            f"{cid}\t{case.number}\t{case.source}\t{case.category}\t{case.source_category}\t"
            f"{case.text}\t{case.hex}\t{micro[:15]}\t"
            f"{micro}\t{case.reporter}\t{case.name}\t{case.phone}\t"
            f"{case.unit if dispatched is not NULL else NULL}\t{case.priority}\t"
            f"{case.steps[-1][4]}\t{at(t0, sec0)}\t{dispatched}\t{deadline}\t{handled}\t{closed}\t"
            f"{returned}\t{merged}\t{case.visit}\t{case.demand}\t{case.external}\t"
            f"{len(case.steps)}\n"
        )


_HOUR_CUM = {key: _cumulative(hours) for key, hours in CASE_HOURS.items()}
_BYTE = [f"{k:02x}" for k in range(256)]


def _load_v6_cases(ctx: _Context) -> None:
    """Version 6: twelve months of cases ending yesterday, from the grid workers' whistles
    (rising), the 12345 hotline (falling threefold), residents online and the visits' escalated
    demands, each with every step it went through; hotspots planted where case_hotspots says;
    department staff for the units version 1 left without. Built from the database (not the
    plan); the same seed on the same day gives the same rows. Bulk: COPY with the case tables'
    indexes and keys set aside, the case counter set to the last numbers."""
    cur = ctx.cur
    cur.execute(
        "SELECT code, id::text, timezone, (now() AT TIME ZONE timezone)::date"
        " FROM subdistrict ORDER BY code"
    )
    subdistricts = cur.fetchall()
    if not subdistricts:
        return
    with ctx.stage("case_setup", "cases: staff, places and hotspots", 2, "steps") as bar:
        _department_staff(ctx)
        bar.update(1)
        history = _CaseHistory(cur, ctx.seed, subdistricts)
        bar.update(1)
    restore = _suspend_indexes(cur, CASE_ROWS)
    # Nothing refers to an event: its primary key is built once after the copy too (millions
    # of random ids at a million households).
    cur.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
        " WHERE conrelid = 'case_event'::regclass AND contype = 'p'"
    )
    for name, definition in cur.fetchall():
        cur.execute(f'ALTER TABLE case_event DROP CONSTRAINT "{name}"')
        restore.insert(0, f'ALTER TABLE case_event ADD CONSTRAINT "{name}" {definition}')
    days = history.days - history.first_day
    with ctx.stage("cases", "twelve months of cases", days, "days") as bar:
        for n, cases, events in _in_background(history.rows):
            ctx.copy("grid_case", cases)
            ctx.copy("case_event", events)
            bar.update(n)
    with ctx.stage("case_indexes", "case indexes and keys", len(restore), "steps") as bar:
        for sql in restore:
            cur.execute(sql)
            bar.update(1)
    years = sorted(y for y, n in history.numbers.items() if n != history.first_numbers.get(y))
    if years:
        cur.execute(
            "INSERT INTO case_counter AS c (year, last)"
            " SELECT * FROM unnest(%s::int[], %s::int[])"
            " ON CONFLICT (year) DO UPDATE SET last = greatest(c.last, EXCLUDED.last)",
            (years, [history.numbers[y] for y in years]),
        )
        ctx.counts["case_counter"] = ctx.counts.get("case_counter", 0) + cur.rowcount


STEPS: list[tuple[int, Callable[[_Context], None]]] = [
    (1, _load_v1),
    (2, _load_v2_logins),
    (3, _load_v3_visits),
    (4, _load_v4_jobs),
    (5, _load_v5_network),
    (6, _load_v6_cases),
]


_END = object()


def _in_background(
    make: Callable[[threading.Event], Iterator[Any]], depth: int = 3
) -> Iterator[Any]:
    """Run a generator in a thread, ``depth`` items ahead, so Python generates the next chunk
    while PostgreSQL copies this one (the GIL is released while psycopg2 waits on the server)."""
    items: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in make(stop):
                if not put(item):
                    return
            put(_END)
        except BaseException as error:  # handed over to the consumer, which re-raises it
            put(error)

    thread = threading.Thread(target=run, name="gridmap-demo-rows", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _suspend_indexes(cur: Any, tables: Sequence[str]) -> list[str]:
    """Drop the secondary indexes, unique constraints and foreign keys of ``tables`` and return
    the statements that recreate them exactly (from the catalog), to run after the copy: building
    an index once is many times faster than growing it row by row, and adding a foreign key checks
    all rows in one join. Primary keys and anything another table depends on stay."""
    restore: list[str] = []
    for table in tables:
        cur.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
            (table,),
        )
        for name, definition in cur.fetchall():
            cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            restore.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    indexes: list[str] = []
    for table in tables:
        cur.execute(
            "SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c"
            " WHERE c.conrelid = %s::regclass AND c.contype = 'u' AND NOT EXISTS ("
            "   SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' AND f.conindid = c.conindid)"
            " ORDER BY c.conname",
            (table,),
        )
        for name, definition in cur.fetchall():
            cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            indexes.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        cur.execute(
            "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
            " JOIN pg_class i ON i.oid = x.indexrelid"
            " WHERE x.indrelid = %s::regclass AND NOT x.indisprimary"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)"
            " ORDER BY i.relname",
            (table,),
        )
        for name, definition in cur.fetchall():
            cur.execute(f'DROP INDEX "{name}"')
            indexes.append(definition)
    # Indexes first: the foreign keys' checks use the referenced tables' indexes.
    return indexes + restore


def _counts(cur: Any) -> dict[str, int]:
    out = {}
    for table in TABLES:
        cur.execute(f"SELECT count(*) FROM {table}")
        out[table] = cur.fetchone()[0]
    return out


def _read_info(cur: Any) -> dict[str, Any] | None:
    cur.execute("SELECT to_regclass('demo_info') IS NOT NULL")
    if not cur.fetchone()[0]:
        raise DemoError(
            "the database has no gridmap schema (no demo_info table): run the migrations first"
        )
    cur.execute("SELECT version, households, seed, loaded_at FROM demo_info WHERE id = 1")
    row = cur.fetchone()
    if row is None:
        return None
    return {"version": row[0], "households": row[1], "seed": row[2], "loaded_at": row[3]}


def demo_info(*, url: str) -> dict[str, Any] | None:
    """The demo loaded in this database (version, households, seed, loaded_at), or None, so a
    caller can tell a demo from real data and an old demo from a current one."""
    conn = psycopg2.connect(_dsn(url))
    try:
        with conn, conn.cursor() as cur:
            return _read_info(cur)
    finally:
        conn.close()


def load_demo(
    *,
    url: str,
    secret_key: str,
    households: int = 5000,
    seed: int = 2026,
    reset: bool = False,
    progress: bool = True,
) -> DemoSummary:
    """Load the demo district into the database at ``url`` (the tables' owner), in one transaction.

    ``secret_key`` (the settings' key) seals the ID numbers as the app will read them.

    Does nothing if this version of the same demo is there already; brings an older version up to
    date; refuses to touch a database holding data that is not the demo, or another demo, unless
    ``reset`` (which empties the model tables, and tables referencing them, first). On any error
    the database is left as it was.
    """
    if not 1 <= households <= MAX_HOUSEHOLDS:
        raise ValueError(f"households: {households} is not between 1 and {MAX_HOUSEHOLDS:,}")
    if not 0 <= seed < 2**31:
        raise ValueError(f"seed: {seed} is not between 0 and 2**31 - 1")
    start = time.perf_counter()
    what = f"demo version {DEMO_VERSION} ({households:,} households, seed {seed})"
    conn = psycopg2.connect(_dsn(url))
    try:
        with conn, conn.cursor() as cur:
            for setting in (
                "statement_timeout = 0",
                "lock_timeout = '60s'",
                "maintenance_work_mem = '512MB'",  # index builds after the copy
                "work_mem = '256MB'",  # the code triggers' and foreign keys' joins
                "temp_buffers = '256MB'",  # the family files of version 3, before the update
                "synchronous_commit = off",
            ):
                cur.execute(f"SET LOCAL {setting}")
            # Two loaders at once wait for each other rather than interleave.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext('gridmap.demo'))")
            status, since = _what_to_do(cur, households, seed, reset)
            if status == "current":
                return DemoSummary(
                    status, DEMO_VERSION, households, seed, _counts(cur),
                    time.perf_counter() - start, message=f"{what} is already loaded",
                )  # fmt: skip
            if reset:
                _truncate(cur)
            ctx = _Context(cur, households, seed, progress, Vault(secret_key))
            for version, step in STEPS:
                if version > since:
                    step(ctx)
            cur.execute(
                "INSERT INTO demo_info (id, version, households, seed) VALUES (1, %s, %s, %s)"
                " ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version,"
                " households = EXCLUDED.households, seed = EXCLUDED.seed, loaded_at = now()",
                (DEMO_VERSION, households, seed),
            )
            with ctx.stage("analyze", "analyze", len(TABLES), "tables") as bar:
                for table in TABLES:
                    cur.execute(f"ANALYZE {table}")
                    bar.update(1)
            counts = _counts(cur) if since else {t: ctx.counts.get(t, 0) for t in TABLES}
    finally:
        conn.close()
    return DemoSummary(
        status, DEMO_VERSION, households, seed, counts, time.perf_counter() - start,
        stages={k: round(v, 3) for k, v in ctx.stages.items()}, message=f"{status} {what}",
    )  # fmt: skip


def _truncate(cur: Any) -> None:
    """Empty the demo's tables and every table referencing them. Append-only tables among those
    (the family files' history) refuse TRUNCATE to keep the app from erasing history; a reset
    replaces the whole demo, history included, so the owner lifts that guard for this statement
    (inside the load's transaction: on error it is back as it was)."""
    cur.execute(
        "WITH RECURSIVE t(oid) AS (SELECT unnest(%s::regclass[])"
        " UNION SELECT c.conrelid FROM pg_constraint c JOIN t ON c.confrelid = t.oid"
        "  WHERE c.contype = 'f')"
        " SELECT g.tgrelid::regclass::text, g.tgname, g.tgenabled FROM pg_trigger g"
        " JOIN t ON g.tgrelid = t.oid"
        " WHERE NOT g.tgisinternal AND g.tgenabled <> 'D' AND g.tgtype & 32 <> 0"
        " ORDER BY 1, 2",
        (list(TABLES),),
    )
    guards = cur.fetchall()
    for table, trigger, _ in guards:
        cur.execute(f'ALTER TABLE {table} DISABLE TRIGGER "{trigger}"')
    cur.execute(f"TRUNCATE {', '.join(TABLES)}, demo_info CASCADE")
    enable = {"O": "ENABLE", "A": "ENABLE ALWAYS", "R": "ENABLE REPLICA"}
    for table, trigger, mode in guards:
        cur.execute(f'ALTER TABLE {table} {enable[mode]} TRIGGER "{trigger}"')


def _what_to_do(cur: Any, households: int, seed: int, reset: bool) -> tuple[str, int]:
    """The status of this load ("loaded", "reloaded", "upgraded", "current") and the version the
    database holds (0: none, so every step runs); raises DemoError rather than overwrite data."""
    info = _read_info(cur)
    if reset:
        return ("reloaded" if info is not None or _has_data(cur) else "loaded"), 0
    if info is None:
        if _has_data(cur):
            raise DemoError(
                "the database holds data that is not the demo (rows in the model tables, no "
                "demo_info row): not loading over it; load the demo into an empty database, or "
                "pass reset=True to empty the tables first"
            )
        return "loaded", 0
    if (info["households"], info["seed"]) != (households, seed):
        raise DemoError(
            f"another demo is loaded here (households={info['households']}, "
            f"seed={info['seed']}): pass reset=True to replace it"
        )
    if info["version"] > DEMO_VERSION:
        raise DemoError(
            f"the demo here is version {info['version']}, newer than this gridmap's "
            f"{DEMO_VERSION}: upgrade gridmap, or pass reset=True to reload it"
        )
    if info["version"] == DEMO_VERSION:
        return "current", DEMO_VERSION
    return "upgraded", info["version"]


def _has_data(cur: Any) -> bool:
    cur.execute("SELECT " + " OR ".join(f"EXISTS (SELECT 1 FROM {t})" for t in TABLES))
    return bool(cur.fetchone()[0])
