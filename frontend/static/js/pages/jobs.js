// Job list page (/monitoring/jobs/): filters from the URL, toolbar, list (see listview.js).

import {jobListView} from "../listview.js";

jobListView();
