/**
 * Word lists for RULER's keys and word lists. RULER draws from the wonderwords package's noun, adjective
 * and verb lists (thousands of words, not available offline); these are smaller lists of common English
 * words used the same way: keys are "adjective-noun", common-words lists mix all three.
 */
export const ADJECTIVES: readonly string[] = (
  'able acid aloof amused ancient angry anxious aquatic bashful basic bitter black bland blue bold boring brave brief bright broad ' +
  'broken brown busy calm careful cheap chief chilly civil clean clear clever close cloudy clumsy coastal cold common cool cosmic ' +
  'crazy creamy crisp cruel curly cute damp dark dear deep dense dizzy dry dull dusty eager early easy elastic empty equal even exotic ' +
  'faint fair false famous fancy fast fat fierce final fine firm flat fluffy fond foolish fragile free fresh friendly frozen funny fuzzy ' +
  'gentle giant glad glossy golden good grand gray great green grumpy guilty happy hard harsh heavy helpful hidden high hollow honest ' +
  'huge humble hungry icy idle jolly juicy keen kind large late lazy lean light little lively local lonely long loose loud lovely lucky ' +
  'magic major mellow merry mild minor misty modern moist narrow nasty near neat nervous new nice noble noisy odd old orange pale plain ' +
  'polite poor proud purple quick quiet rapid rare raw ready red rich rigid ripe rough round royal rude rural rusty sad safe salty ' +
  'sandy scary sharp shiny short shy silent silky silly simple sleepy slim slow small smart smooth snowy soft solid sour spicy spotty ' +
  'stale steep sticky stormy strange strict strong sturdy subtle sunny super sweet swift tall tame tart tender thick thin tidy tiny ' +
  'tough tricky ugly upset urban vague vast violet warm wary weak wet white whole wide wild windy wise witty wooden yellow young zany'
).split(' ');

export const NOUNS: readonly string[] = (
  'actor airport alarm album anchor angle animal ankle answer apple arch arm army arrow artist attic aunt author avenue baby bag bakery ' +
  'ball balloon banana band bank barn basket bath battery beach bead beard bed bell belt bench berry bicycle bird blanket block boat ' +
  'body bone book boot bottle box boy brain branch bread brick bridge brother brush bucket bulb bus butter button cabin cake camera ' +
  'camp canal candle cannon canvas cap car card carpet carrot castle cat cave cellar chain chair chalk cheese cherry chest chicken ' +
  'child chimney church circle city clock cloud coat coffee coin collar comb cook copper corn cottage cousin cow crayon cream crow ' +
  'crown cup curtain cushion dancer desert desk diamond dinner doctor dog doll door dragon drawer dream dress drum duck eagle ear ' +
  'earth egg elbow engine eye face factory farm father feather fence field finger fire fish flag flame flower flute fog folder foot ' +
  'forest fork fountain fox frog fruit garden gate ghost gift girl glass glove goat gold grape grass guitar hair hammer hand harbor ' +
  'hat hawk heart helmet hill hobby hole honey horn horse hospital hotel house island jacket jam jar jelly jewel judge juice kettle ' +
  'key king kitchen kite knee knife ladder lake lamp lawyer leaf lemon letter library lily lion lizard lock machine magnet map marble ' +
  'market meadow melon mirror monkey moon mother mountain mouse mouth museum needle nest net night noodle nose notebook ocean office ' +
  'onion orange owl oyster page paint palace pan paper parrot pear pebble pen pencil pepper piano picture pie pig pillow pilot pipe ' +
  'planet plant plate pocket poet pond potato queen rabbit radio rain river road robot rock roof room rope rose sail salad sand ' +
  'school scissors sea seed sheep shelf shell ship shirt shoe shop shovel singer sister skirt sky snail snake sock sofa soldier soup ' +
  'spider spoon square stamp star station statue stone stove street sugar sun swan sword table tail teacher tent thread throne ' +
  'ticket tiger toast tomato tooth tower town toy tractor train tree truck tulip tunnel turtle umbrella uncle valley vase violin ' +
  'wagon wall wallet watch water wave whale wheel whistle window wing winter wizard wolf worm yard zebra'
).split(' ');

export const VERBS: readonly string[] = (
  'accept add admire agree allow answer appear argue arrive ask attack bake balance bang bathe beg behave belong blink boil borrow ' +
  'bounce breathe brush build bury buy call camp carry catch change chase cheer chew clap climb collect comb count cover crawl cross ' +
  'cry dance deliver dig divide dream drink drive drop dry earn enjoy escape explain fetch fill float fold follow gather glow grab ' +
  'greet grow guard guess hang help hide hover hug hunt jog juggle jump kick kneel knit knock laugh launch lead lift listen march ' +
  'melt mix mourn move nod obey offer open pack paint peel plant play pour pray print pull push race rain reach read relax repair ' +
  'rescue rest ride ring roll rub sail scatter scream search shake share shiver shout sing skate ski sleep slide smell smile sneeze ' +
  'sniff spark spill spin splash sprout squeeze stack stare steer stir stretch swim swing talk taste teach tease throw tickle travel ' +
  'trust tumble turn twist wander wash watch wave whisper whistle wink wish wobble worry write yawn yell zoom'
).split(' ');
